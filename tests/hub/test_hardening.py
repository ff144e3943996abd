"""Hostile input against the hub (issue 12): each test reproduces an attack that once
gave a 500, grew state without bound, or outlived its credential."""
from __future__ import annotations

import json

import pytest

from hub import json_bounds

DEEP = "[" * 1000 + "]" * 1000


# --- item 5: bounded input ---------------------------------------------------------------

@pytest.mark.parametrize("path", ["/auth/login", "/api/v1/tenants", "/agent/v1/desired", "/agent/v1/status",
                                  "/agent/v1/enroll"])
async def test_deep_json_is_a_400_before_authentication(hub, path):
    r = await hub.client().post(path, data=DEEP, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, await r.get_data(as_text=True)


async def test_deep_json_is_a_400_for_a_signed_in_caller_too(hub):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/policies", data='{"name": "p", "source": ' + DEEP + "}",
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_depth_ignores_brackets_in_strings():
    assert json_bounds.depth(json.dumps({"a": "[[[[" * 100, "b": [[1]]})) == 3
    assert json_bounds.loads('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}
    with pytest.raises(ValueError):
        json_bounds.loads("[" * (json_bounds.MAX_DEPTH + 1) + "]" * (json_bounds.MAX_DEPTH + 1))


async def test_a_huge_dsl_number_is_a_located_diagnostic_and_the_policy_stays_readable(hub):
    t = await hub.tenant()
    source = 'policy "p"\ndefault drop\npass tcp dport ' + "9" * 5000 + "\n"
    r = await t.token.post(t.base + "/policies", json={"name": "p", "source": source})
    assert r.status_code in (201, 422), await r.get_data(as_text=True)
    listed = await (await t.token.get(t.base + "/policies")).get_json()
    for p in listed["policies"]:
        got = await t.token.get(f"{t.base}/policies/{p['id']}")
        assert got.status_code == 200, await got.get_data(as_text=True)
    if r.status_code == 201:
        (d,) = (await r.get_json())["latest"]["diagnostics"]
        assert (d["line"], d["col"]) == (3, 16) and "20 digits" in d["message"]


async def test_a_policy_never_exists_without_its_version(hub, monkeypatch):
    from hub.models import Policy
    from hub.services import policies

    t = await hub.tenant()

    async def broken(*a, **kw):
        raise RuntimeError("the database went away mid-save")

    monkeypatch.setattr(policies, "_insert_version", broken)
    r = await t.token.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault drop\n'})
    assert r.status_code == 500
    assert not await Policy.filter(name="p").exists()


@pytest.mark.parametrize("line", ['192.0.2.2,"' + "x" * (129 * 1024) + '"', "192.0.2.2," + "9" * 20,
                                  "192.0.2.2," + "9" * 5000, "192.0.2.2,9223372036854775808"])
async def test_bad_csv_fields_are_a_400_naming_the_line(hub, line):
    t = await hub.tenant()
    r = await t.token.post(t.base + "/lists", json={"name": "l", "kind": "deny"})
    base = f"{t.base}/lists/{(await r.get_json())['id']}"
    r = await t.token.post(base + "/import?format=csv", data=("192.0.2.1\n" + line + "\n").encode())
    assert r.status_code == 400, await r.get_data(as_text=True)
    assert [d["line"] for d in (await r.get_json())["details"]] == [2]


# --- item 6: bounded metrics series ------------------------------------------------------

def _series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line.startswith("bulwark_hub_requests_total")}


async def test_random_http_methods_do_not_grow_metrics_series(hub):
    client = hub.client()
    for path in ("/healthz", "/agent/v1/desired"):
        for i in range(2):
            await client.open(path, method=f"BREW{i}")
    before = _series(await (await client.get("/metrics")).get_data(as_text=True))
    for path in ("/healthz", "/agent/v1/desired", "/api/v1/tenants"):
        for i in range(30):
            r = await client.open(path, method=f"X{i}QZ")
            assert r.status_code in (400, 405)
    after = _series(await (await client.get("/metrics")).get_data(as_text=True))
    new = after - before
    assert len(new) <= 2, new  # "other" on the one more endpoint, and /metrics' own GET
    assert all('method="other"' in s or 'method="GET"' in s for s in after - before)
    assert not any("X1QZ" in s or "BREW" in s for s in after)
