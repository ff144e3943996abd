"""`bulwark rules ...`: check, fmt, compile, explain, eval, test and replay policy files.

The only module of the package that does I/O. Exit status: 0 clean, 1 findings (errors,
failed expects, files that fmt would change), 2 usage or unreadable files.
"""
from __future__ import annotations

import argparse
import sys

from . import Management, load, parse, parse_packet
from .check import check_resolved
from .errors import DslError
from .evaluate import evaluate
from .explain import explain
from .expects import run_expects
from .fmt import fmt
from .packet import packet_from_spec
from .resolve import Resolved


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _management(args) -> Management | None:
    if not (args.hub or args.admin):
        return None
    addr, port = None, 443
    if args.hub:
        host, _, p = args.hub.rpartition(":")
        addr, port = host.strip("[]"), int(p)
    return Management(addr, port, args.ssh_port, tuple(args.admin))


def _print_diags(diags) -> None:
    for d in diags:
        print(d.render(), file=sys.stderr)


def cmd_check(args) -> int:
    bad = False
    for path in args.files:
        checked = load(_read(path), path, _management(args))
        _print_diags(checked.diagnostics)
        bad |= not checked.ok
    return 1 if bad else 0


def cmd_fmt(args) -> int:
    changed = False
    for path in args.files:
        text = _read(path)
        try:
            out = fmt(parse(text, path))
        except DslError as exc:
            _print_diags(exc.diagnostics)
            changed = True
            continue
        if out == text:
            continue
        changed = True
        if args.check:
            print(f"{path}: would be reformatted", file=sys.stderr)
        elif path == "-":
            sys.stdout.write(out)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(out)
            print(f"{path}: reformatted", file=sys.stderr)
    return 1 if changed and args.check else 0


def _compiled(path: str, args):
    checked = load(_read(path), path, _management(args))
    _print_diags(checked.diagnostics)
    return checked


def cmd_compile(args) -> int:
    checked = _compiled(args.file, args)
    if not checked.ok:
        return 1
    text = checked.plan.to_json()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"{args.output}: plan {checked.plan.digest}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_explain(args) -> int:
    checked = _compiled(args.file, args)
    if not checked.ok:
        return 1
    sys.stdout.write(explain(checked.policy, checked.plan))
    return 0


def _resolved(checked) -> Resolved:
    return check_resolved(checked.policy, None)[0]


def cmd_eval(args) -> int:
    checked = _compiled(args.file, args)
    if not checked.ok:
        return 1
    try:
        e = parse_packet(" ".join(args.packet), "<packet>")
    except DslError as exc:
        _print_diags(exc.diagnostics)
        return 2
    from .diagnostics import Reporter
    rep = Reporter(" ".join(args.packet), "<packet>")
    packet = packet_from_spec(e.packet, rep)
    if packet is None:
        _print_diags(rep.items)
        return 2
    res = _resolved(checked)
    from .evaluate import AddressIndex
    lists = {k: AddressIndex(v) for k, v in res.test_lists.items()}
    decision, _ = evaluate(checked.plan, packet, None, 0, lists=lists)
    plan = checked.plan
    if decision.rule is not None:
        by = f"rule {decision.rule + 1} (line {res.rules[decision.rule].node.pos.line}): {plan.xdp.rules[decision.rule].text}"
    else:
        by = {"default": "the default verdict", "malformed": "the malformed verdict",
              "non-ip": "non-IP frames always pass"}[decision.reason]
    extra = f" (would {'drop' if decision.would_drop else 'pass'}: monitor mode)" \
        if plan.xdp.mode == "monitor" else ""
    print(f"{decision.verdict}{extra} — {by} [{decision.reason}]")
    return 0


def cmd_test(args) -> int:
    failed = False
    for path in args.files:
        checked = _compiled(path, args)
        if not checked.ok:
            failed = True
            continue
        outcomes = run_expects(_resolved(checked), checked.plan)
        for o in outcomes:
            if not o.passed or args.verbose:
                print(o.render(path, checked.plan))
        bad = sum(not o.passed for o in outcomes)
        failed |= bad > 0
        print(f"{path}: {len(outcomes) - bad} passed, {bad} failed")
    return 1 if failed else 0


def _replayable(path: str, args):
    checked = _compiled(path, args)
    if not checked.ok:
        return None, None
    from .evaluate import AddressIndex
    res = _resolved(checked)
    return checked.plan, {k: AddressIndex(v) for k, v in res.test_lists.items()}


def cmd_replay(args) -> int:
    import json

    from .capture import read_capture
    from .replay import as_dict, render_text, replay
    plan, lists = _replayable(args.file, args)
    if plan is None:
        return 1
    against, against_lists = None, None
    if args.against:
        against, against_lists = _replayable(args.against, args)
        if against is None:
            return 1
    if args.capture == "-":
        s = replay(plan, read_capture(sys.stdin.buffer), lists=lists, against=against,
                   against_lists=against_lists)
    else:
        with open(args.capture, "rb") as f:
            s = replay(plan, read_capture(f), lists=lists, against=against,
                       against_lists=against_lists)
    if args.json:
        print(json.dumps(as_dict(s, plan, top=args.top, against=against), indent=2))
    else:
        sys.stdout.write(render_text(s, plan, top=args.top, against=against))
    if s.error is not None:
        print(f"{args.capture}: {s.error}", file=sys.stderr)
        return 2
    return 0


def _count(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 10_000:
        raise argparse.ArgumentTypeError(f"{n} is not in 0..10000")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bulwark rules", description="write, check, test and "
                                 "compile Bulwark policies (.bw)")
    sub = ap.add_subparsers(dest="command", required=True)

    def mgmt(p):
        p.add_argument("--hub", metavar="ADDR:PORT", help="the hub this server talks to")
        p.add_argument("--ssh-port", type=int, default=22, help="the SSH port kept open to --admin")
        p.add_argument("--admin", metavar="PREFIX", action="append", default=[],
                       help="a prefix SSH must stay open to (repeatable)")
    p = sub.add_parser("check", help="report errors and warnings")
    p.add_argument("files", nargs="+", help="policy files (.bw)")
    mgmt(p)
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("fmt", help="rewrite files in the canonical layout")
    p.add_argument("--check", action="store_true", help="only report files that would change")
    p.add_argument("files", nargs="+", help="policy files (.bw)")
    p.set_defaults(fn=cmd_fmt)
    p = sub.add_parser("compile", help="print or write the Plan JSON")
    p.add_argument("file", help="the policy file (.bw)")
    p.add_argument("-o", "--output", help="write the Plan here instead of stdout")
    mgmt(p)
    p.set_defaults(fn=cmd_compile)
    p = sub.add_parser("explain", help="say in plain English what the policy does")
    p.add_argument("file", help="the policy file (.bw)")
    p.set_defaults(fn=cmd_explain, hub=None, admin=[], ssh_port=22)
    p = sub.add_parser("eval", help="the verdict for one packet, e.g. "
                       "'tcp 203.0.113.9:4000 -> 198.51.100.2:22 flags syn'")
    p.add_argument("file", help="the policy file (.bw)")
    p.add_argument("packet", nargs=argparse.REMAINDER, help="the packet, as in an expect line")
    p.set_defaults(fn=cmd_eval, hub=None, admin=[], ssh_port=22)
    p = sub.add_parser("test", help="run the expect lines")
    p.add_argument("files", nargs="+", help="policy files (.bw)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every expect line, not only failures")
    p.set_defaults(fn=cmd_test, hub=None, admin=[], ssh_port=22)
    p = sub.add_parser("replay", help="every frame of a pcap/pcapng capture through the policy")
    p.add_argument("file", help="the policy file (.bw)")
    p.add_argument("capture", help="a capture file (pcap or pcapng; - for stdin)")
    p.add_argument("--against", metavar="RUNNING.bw",
                   help="also list the frames whose verdict differs from this policy's")
    p.add_argument("--json", action="store_true", help="print the tally as JSON")
    p.add_argument("--top", metavar="N", type=_count, default=10,
                   help="how many dropped sources to list (default 10)")
    p.set_defaults(fn=cmd_replay, hub=None, admin=[], ssh_port=22)
    return ap


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return args.fn(args)
    except OSError as exc:
        print(f"bulwark rules: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"bulwark rules: {exc}", file=sys.stderr)
        return 2
