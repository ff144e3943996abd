"""nftables through libnftables' JSON API, inside a test-made namespace only."""
from __future__ import annotations

import pytest

from bpf import Nft, NftError, in_netns

pytestmark = pytest.mark.kernel

TABLE = {"family": "inet", "name": "bulwark"}
CHAIN = {**TABLE, "table": "bulwark", "name": "input", "type": "filter", "hook": "input",
         "prio": 0, "policy": "accept"}
del CHAIN["family"]
CHAIN = {"family": "inet", **CHAIN}
RULE = {"family": "inet", "table": "bulwark", "chain": "input", "expr": [
    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
    {"counter": None},
    {"accept": None},
]}


def nft_in(ns: str) -> Nft:
    with in_netns(ns):
        return Nft()


def test_json_adds_a_table_chain_and_rule_and_lists_them_back(veth_lab):
    with nft_in(veth_lab.ns) as nft:
        nft.run([{"add": {"table": TABLE}}, {"add": {"chain": CHAIN}}, {"add": {"rule": RULE}}])
        listed = nft.list("table inet bulwark")
    chains = [o["chain"] for o in listed if "chain" in o]
    rules = [o["rule"] for o in listed if "rule" in o]
    assert [c["name"] for c in chains] == ["input"] and chains[0]["hook"] == "input"
    assert len(rules) == 1 and rules[0]["expr"][0]["match"]["right"] == 22
    with nft_in(veth_lab.peer_ns) as other:  # another namespace saw nothing
        assert not [o for o in other.list() if "table" in o]


def test_a_bad_command_raises_with_nfts_own_message(veth_lab):
    with nft_in(veth_lab.ns) as nft:
        with pytest.raises(NftError, match="No such file or directory"):
            nft.run([{"add": {"rule": RULE}}])  # no such table
        with pytest.raises(NftError, match="syntax error|Error"):
            nft.run("add tabel inet bulwark")


def test_check_validates_without_applying(veth_lab):
    with nft_in(veth_lab.ns) as nft:
        nft.check([{"add": {"table": TABLE}}, {"add": {"chain": CHAIN}}])
        assert not [o for o in nft.list() if "table" in o]
        with pytest.raises(NftError):
            nft.check([{"add": {"chain": {**CHAIN, "hook": "nowhere"}}}, {"add": {"table": TABLE}}])
