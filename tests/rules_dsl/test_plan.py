"""The Plan: canonical JSON, digest, schema validation, nft part."""
from __future__ import annotations

import json

import pytest

import rules_dsl
from rules_dsl import Plan, PlanError

from .helpers import plan

TEXT = ('policy "p"\ndefault drop\nset a { 192.0.2.0/24, 192.0.2.9, 2001:db8::1, 2001:db8::/48 }\n'
        'set l { list "ban" }\ndrop from @l\npass tcp from @a dport 22\n'
        "pass tcp flags ack/syn|ack\npass udp dport 53 limit 10/second\n"
        "stateful {\n  drop ct state invalid\n  drop tcp dport 22 rate over 5/minute per src\n"
        "  synproxy tcp dport 443 mss 1460\n}\n")


def test_canonical_json_digest_and_round_trip():
    p = plan(TEXT)
    text = p.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert Plan.from_json(text) == p and Plan.from_json(text).digest == p.digest
    assert plan(TEXT).digest == p.digest
    assert plan(TEXT.replace("dport 22", "dport 23")).digest != p.digest


def test_formatting_does_not_change_the_plan():
    assert plan(rules_dsl.fmt(rules_dsl.parse(TEXT))).digest == plan(TEXT).digest


def test_sets_are_split_for_the_data_plane():
    s = plan(TEXT).xdp.sets
    assert (s[0].name, s[0].lists) == ("l", ("ban",))
    assert s[1].v4_hosts == ("192.0.2.9",) or s[1].v4_prefixes == ("192.0.2.0/24",)
    assert s[1].v4_prefixes == ("192.0.2.0/24",) and s[1].v6_prefixes == ("2001:db8::/48",)


def test_nft_part_only_touches_table_inet_bulwark():
    doc = plan(TEXT).nft
    for cmd in doc["nftables"]:
        (verb, body), = cmd.items()
        if verb == "metainfo":
            continue
        (kind, obj), = body.items()
        assert obj["family"] == "inet"
        assert (obj.get("name") if kind == "table" else obj["table"]) == "bulwark"
    verbs = [next(iter(c)) for c in doc["nftables"][1:4]]
    assert verbs == ["add", "delete", "add"]


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(schema_version=3),
    lambda d: d.update(schema_version=True),
    lambda d: d["xdp"]["rules"][3].update(rate_profiles=[0] * 5),
    lambda d: d["xdp"]["rules"][3].update(rate_profiles=0),
    lambda d: d["xdp"]["rules"][3].update(rate_profile=0),
    lambda d: d["xdp"]["rules"][0].update(rate_profiles=[0]),
    lambda d: d["xdp"].update(mode="panic"),
    lambda d: d["xdp"]["rules"][0].update(src=99),
    lambda d: d["xdp"]["rules"][0].update(extra=1),
    lambda d: d["xdp"]["sets"][0]["v4_prefixes"].append("10.0.0.1/8"),
    lambda d: d["xdp"]["rules"][3].update(rate_profiles=[]),
    lambda d: d["xdp"]["rate_profiles"][0].update(rate=0),
    lambda d: d["nft"]["nftables"].append({"add": {"table": {"family": "ip", "name": "filter"}}}),
])
def test_from_json_rejects_what_breaks_the_schema(mutate):
    d = json.loads(plan(TEXT).to_json())
    mutate(d)
    with pytest.raises(PlanError):
        Plan.from_json(json.dumps(d))


def test_from_json_rejects_garbage():
    for junk in ["", "[]", "{", '{"schema_version":1}', "null"]:
        with pytest.raises(PlanError):
            Plan.from_json(junk)
