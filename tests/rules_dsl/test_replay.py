"""`bulwark rules replay`: the tally agrees with evaluating the same frames directly."""
from __future__ import annotations

import json
import pathlib
from collections import Counter

import pytest

from rules_dsl import Packet, build_frame, evaluate, parse_frame
from rules_dsl.capture import read_capture
from rules_dsl.cli import main
from rules_dsl.replay import MAX_DIFFS, replay

from . import captures as w
from .helpers import plan, tcp, udp

POLICY = ('policy "cand"\ndefault pass\n'
          "drop tcp dport 23\n"
          "pass udp dport 53 limit 2/second burst 2 per src\n"
          "drop udp dport 53\n")
RUNNING = 'policy "run"\ndefault pass\ndrop tcp dport 23\n'
MS = 10**6


def traffic():
    """(ts_ns, Ethernet frame): a DNS burst from two sources, telnet, ARP, a bad frame."""
    out, t = [], 1_700_000_000 * w.NS
    for i in range(10):
        src = "192.0.2.1" if i % 3 else "192.0.2.2"
        out.append((t + i * 100 * MS, build_frame(udp(src, "198.51.100.2"))))
    out.append((t + 2 * w.NS, build_frame(tcp("203.0.113.9", "198.51.100.2", dport=23))))
    out.append((t + 2 * w.NS, build_frame(tcp("2001:db8::9", "2001:db8::2", dport=80))))
    out.append((t + 3 * w.NS, build_frame(Packet())))
    out.append((t + 3 * w.NS, build_frame(Packet(l3="ipv4", malformed=True))))
    return out


def direct(p, frames):
    state, verdicts = None, []
    for ts, f in frames:
        d, state = evaluate(p, parse_frame(f), state, ts)
        verdicts.append(d)
    return verdicts


@pytest.mark.parametrize("link", [1, 113, 276])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_counts_agree_with_evaluating_the_frames_directly(link, fmt):
    frames = traffic()
    recs = [(ts, w.to_link(link, f)) for ts, f in frames]
    data = w.pcap(recs, link) if fmt == "pcap" else w.pcapng(recs, link, tsresol=9)
    cand = plan(POLICY)
    s = replay(cand, read_capture(data), against=plan(RUNNING))
    ds = direct(cand, frames)
    assert s.error is None and s.frames == len(frames)
    assert s.verdicts == Counter(d.verdict for d in ds)
    for i in range(3):
        assert s.rules[i] == Counter(d.verdict for d in ds if d.rule == i and d.reason not in
                                     ("non-ip", "malformed"))
    assert (s.non_ip, s.malformed) == (1, 1)
    # 2 per second per source over the capture's own clock: some DNS passes, some not;
    # the limit rule decides every DNS packet, so rule 3 sees none
    assert s.rules[1]["pass"] > 0 and s.rules[1]["drop"] > 0 and not s.rules[2]
    running = direct(plan(RUNNING), frames)
    diff = [i + 1 for i, (a, b) in enumerate(zip(ds, running)) if a.verdict != b.verdict]
    assert [d.frame for d in s.differences] == diff and s.differing == len(diff)


def test_the_limit_is_charged_at_capture_time():
    cand = plan('policy "l"\ndefault pass\npass udp dport 53 limit 1/second burst 1 per src\n')
    f = build_frame(udp("192.0.2.1", "198.51.100.2"))
    fast = replay(cand, read_capture(w.pcap([(i * MS, f) for i in range(5)])))
    slow = replay(cand, read_capture(w.pcap([(i * 2 * w.NS, f) for i in range(5)])))
    assert fast.rules[0]["drop"] == 4 and slow.rules[0]["drop"] == 0
    assert fast.top_sources(5) == [("192.0.2.1", 4)]


def test_only_the_first_differences_are_kept_but_all_are_counted():
    f = build_frame(tcp("192.0.2.1", "198.51.100.2", dport=23))
    s = replay(plan(RUNNING), read_capture(w.pcap([(i, f) for i in range(50)])),
               against=plan('policy "p"\ndefault pass\n'))
    assert s.differing == 50 and len(s.differences) == MAX_DIFFS


def test_a_truncated_capture_keeps_the_frames_before_the_cut():
    data = w.pcap([(0, f) for _, f in traffic()])
    s = replay(plan(POLICY), read_capture(data[:-5]))
    assert s.frames == len(traffic()) - 1 and s.error is not None


# ---- the CLI -----------------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    pol, run, cap = tmp_path / "c.bw", tmp_path / "r.bw", tmp_path / "t.pcapng"
    pol.write_text(POLICY)
    run.write_text(RUNNING)
    cap.write_bytes(w.pcapng(traffic(), 1))
    return str(pol), str(run), str(cap)


def test_cli_json_shape(files, capsys):
    pol, run, cap = files
    assert main(["replay", pol, cap, "--against", run, "--json", "--top", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"policy", "mode", "frames", "first_ts_ns", "last_ts_ns", "verdicts",
                        "would_drop", "non_ip", "malformed", "rules", "default",
                        "top_dropped_sources", "other_dropped_sources", "against", "error"}
    assert out["frames"] == 14 and out["non_ip"] == 1 and out["malformed"] == 1
    assert out["rules"][0] == {"rule": 1, "text": "drop tcp dport 23", "pass": 0, "drop": 1}
    assert len(out["top_dropped_sources"]) == 1
    assert out["top_dropped_sources"][0]["src"] == "192.0.2.1"
    d = out["against"]["frames"][0]
    assert set(d) == {"frame", "ts_ns", "l3", "proto", "src", "sport", "dst", "dport",
                      "candidate", "running"}
    assert d["candidate"] == "drop" and d["running"] == "pass" and d["dport"] == 53
    assert out["against"]["differing"] == len(out["against"]["frames"]) > 0
    assert out["error"] is None


def test_cli_text(files, capsys):
    pol, run, cap = files
    assert main(["replay", pol, cap, "--against", run]) == 0
    out = capsys.readouterr().out
    assert "Policy 'cand': 14 frame(s)" in out
    assert "Not IP: 1 (always pass). Malformed: 1" in out
    assert "[drop tcp dport 23]" in out and "[pass udp dport 53 limit" in out
    assert "Top dropped sources" in out and "192.0.2.1" in out
    assert "Against 'run':" in out and "udp 192.0.2.1:40000 -> 198.51.100.2:53: drop here, pass running" in out


def test_cli_rule_text_is_the_one_explain_prints(files, capsys):
    pol, _, cap = files
    main(["explain", pol])
    explained = capsys.readouterr().out
    main(["replay", pol, cap, "--json"])
    for r in json.loads(capsys.readouterr().out)["rules"]:
        assert f"[{r['text']}]" in explained


def test_cli_hostile_captures_exit_2_with_a_located_message(files, tmp_path, capsys):
    pol, _, cap = files
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * (1 << 20))
    assert main(["replay", pol, str(bad)]) == 2
    assert "byte 0: not a pcap or pcapng file" in capsys.readouterr().err
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(pathlib.Path(cap).read_bytes()[:-10])
    assert main(["replay", pol, str(cut), "--json"]) == 2
    cap_out = capsys.readouterr()
    assert json.loads(cap_out.out)["error"]["offset"] > 0 and "byte" in cap_out.err
    other = tmp_path / "wifi.pcap"
    other.write_bytes(w.pcap([(0, b"x")], 105))
    assert main(["replay", pol, str(other)]) == 2
    assert "link type 105 (IEEE 802.11) is not supported" in capsys.readouterr().err
    assert main(["replay", pol, str(tmp_path / "missing.pcap")]) == 2
    assert main(["replay", pol, cap, "--top", "-1"]) == 2


def test_cli_reads_the_capture_from_stdin(files, monkeypatch, capsys):
    import io
    import types
    pol, _, cap = files
    stdin = types.SimpleNamespace(buffer=io.BytesIO(pathlib.Path(cap).read_bytes()))
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["replay", pol, "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 14


def test_pcap_link_type_upper_bits_are_not_the_link_type():
    data = bytearray(w.pcap([(0, build_frame(udp("192.0.2.1", "198.51.100.2")))]))
    data[20:24] = (1 | 0x1 << 28 | 4 << 29).to_bytes(4, "little")   # FCS flag and length
    assert [r.link_type for r in read_capture(bytes(data))] == [1]
