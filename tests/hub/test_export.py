"""Data export: a tenant's and a person's data as one ZIP of JSON, CSV and JSON Schema.

The archive is opened and every JSON file checked against its own schema (by hand: the
subset of JSON Schema the export uses), every CSV against its JSON; secrets and hashes of
credentials are looked for in every byte; a large list is exported with the hub's peak RSS
measured."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
import zipfile

import pytest

from hub.models import (
    Agent,
    AlertChannel,
    ApiToken,
    AuditEntry,
    Incident,
    IpEntry,
    IpList,
    JoinToken,
    Membership,
    RecoveryCode,
    Session,
    Tenant,
    User,
)
from hub.services import export
from tests.hub.harness import HubHarness, enroll

HOSTILE = "=HYPERLINK(\"http://evil.example\",\"x\")"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
PY_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list, "null": type(None)}


def check(schema: dict, doc: object) -> None:
    """`doc` against `schema`: the subset of JSON Schema 2020-12 that export.Kind.schema writes."""
    assert isinstance(doc, list) and schema["type"] == "array"
    items = schema["items"]
    for row in doc:
        assert isinstance(row, dict)
        assert set(items["required"]) <= row.keys()
        assert row.keys() <= items["properties"].keys()  # additionalProperties: false
        for name, value in row.items():
            prop = items["properties"][name]
            types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            ok = [t for t in types if isinstance(value, PY_TYPES[t]) and not (t == "integer" and isinstance(value, bool))]
            assert ok, (name, value, types)
            if value is not None and prop.get("format") == "date-time":
                dt.datetime.fromisoformat(value)
            if value is not None and prop.get("format") == "uuid":
                uuid.UUID(value)


def opened(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
        return {name: zf.read(name) for name in zf.namelist()}


def checked(files: dict[str, bytes], kinds: tuple[export.Kind, ...]) -> dict[str, list[dict]]:
    """Every kind's three files agree with each other; the rows by kind."""
    assert "README.txt" in files
    readme = files["README.txt"].decode()
    expected = {"README.txt"}
    out = {}
    for kind in kinds:
        expected |= {f"{kind.name}.json", f"{kind.name}.csv", f"schemas/{kind.name}.schema.json"}
        assert f"{kind.name}:" in readme
        rows = json.loads(files[f"{kind.name}.json"])
        schema = json.loads(files[f"schemas/{kind.name}.schema.json"])
        check(schema, rows)
        table = list(csv.reader(io.StringIO(files[f"{kind.name}.csv"].decode(), newline="")))
        assert table[0] == [f.name for f in kind.fields] == list(schema["items"]["properties"])
        assert len(table) - 1 == len(rows)
        for line, row in zip(table[1:], rows):
            assert line == [export.csv_cell(f, row[f.name]) for f in kind.fields]
        out[kind.name] = rows
    assert set(files) == expected
    return out


async def _populated(hub):
    """A tenant with something of every kind, and the secrets it holds."""
    t = await hub.tenant()
    agent = await enroll(t, labels=["web"])
    await Tenant.filter(id=t.id).update(name=HOSTILE)
    r = await t.token.post(t.base + "/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\n'})
    assert r.status_code == 201, await r.get_data(as_text=True)
    policy = await r.get_json()
    r = await t.token.post(t.base + "/deployments", json={"policy_id": policy["id"], "agent_ids": [agent.id]})
    assert r.status_code == 201, await r.get_data(as_text=True)
    r = await t.token.post(t.base + "/lists", json={"name": "bad", "kind": "deny"})
    assert r.status_code == 201, await r.get_data(as_text=True)
    list_id = (await r.get_json())["id"]
    r = await t.token.post(f"{t.base}/lists/{list_id}/entries", json={"add": [{"network": "192.0.2.1/32"}]})
    assert r.status_code == 200, await r.get_data(as_text=True)
    hook = f"http://127.0.0.1:9/hook/path-secret-{uuid.uuid4().hex}"
    r = await t.owner.post(t.base + "/alerts/channels", json={"kind": "webhook", "name": "w", "target": hook})
    assert r.status_code == 201, await r.get_data(as_text=True)
    webhook_secret = (await r.get_json())["secret"]
    await Incident.create(tenant_id=t.id, kind="agent_offline", subject=agent.id, summary="-1 agent",
                          opened_at=NOW, last_seen_at=NOW)
    await User.filter(id=t.user.id).update(totp_secret="JBSWY3DPEHPK3PXPTOTPSECRET")
    await RecoveryCode.create(user_id=t.user.id, code_hash="f" * 64)
    await JoinToken.filter(tenant_id=t.id).update(secret_hash="e" * 64)
    user = await User.get(id=t.user.id)
    secrets = [user.password_hash, user.totp_secret, "f" * 64, "e" * 64, webhook_secret, "path-secret",
               t.token.token, agent.token]
    secrets += [s.id_hash for s in await Session.filter(user_id=user.id)]
    secrets += [s.csrf_token for s in await Session.filter(user_id=user.id)]
    secrets += [k.secret_hash for k in await ApiToken.filter(tenant_id=t.id)]
    secrets += [a.credential_hash for a in await Agent.filter(tenant_id=t.id)]
    secrets += [c.secret for c in await AlertChannel.filter(tenant_id=t.id)]
    return t, [s for s in secrets if s]


def _no_secrets(body: bytes, files: dict[str, bytes], secrets: list[str]) -> None:
    for secret in secrets:
        for name, data in files.items():
            assert secret.encode() not in data, f"{name} holds a secret"
        assert secret.encode() not in body


BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@BOTH
async def test_tenant_archive_has_every_kind_valid_and_no_secrets(tmp_path, backend):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t, secrets = await _populated(hub)
        r = await t.owner.get(t.base + "/export")
        assert r.status_code == 200, await r.get_data(as_text=True)
        assert r.headers["Content-Type"] == "application/zip"
        assert "attachment" in r.headers["Content-Disposition"]
        body = await r.get_data()
        files = opened(body)
        rows = checked(files, export.TENANT_KINDS)
        _no_secrets(body, files, secrets)

        assert rows["tenant"][0]["name"] == HOSTILE
        assert [m["role"] for m in rows["members"]] == ["owner"]
        assert rows["members"][0]["email"] == t.user.email
        assert len(rows["agents"]) == 1 and rows["agents"][0]["labels"] == ["web"]
        assert rows["policy_versions"][0]["source"].startswith('policy "p"')
        assert len(rows["deployments"]) == 1
        assert rows["list_entries"][0]["network"] == "192.0.2.1"
        assert rows["alert_channels"][0]["target"] == "http://127.0.0.1"
        assert "-1 agent" in [i["summary"] for i in rows["incidents"]]
        assert {"tenant.create", "token.create"} <= {e["action"] for e in rows["audit"]}
        # CSV: formula-looking cells are defused, JSON keeps the value as it is.
        table = list(csv.DictReader(io.StringIO(files["tenant.csv"].decode(), newline="")))
        assert table[0]["name"] == "'" + HOSTILE
        table = list(csv.DictReader(io.StringIO(files["incidents.csv"].decode(), newline="")))
        (mine,) = [row for row in table if row["kind"] == "agent_offline"]
        assert mine["summary"] == "'-1 agent" and mine["observations"] == "1"

        # Who exported what is in the audit log.
        entry = await AuditEntry.filter(action="privacy.export").get()
        assert entry.tenant_id == t.id and entry.actor == f"user:{t.user.email}"
        assert entry.target == f"tenant:{t.id}"
        assert entry.details["rows"]["list_entries"] == 1 and entry.details["rows"]["members"] == 1


async def test_my_archive_is_mine_only(tmp_path):
    async with HubHarness(tmp_path, webhook_allow_private=True) as hub:
        t, secrets = await _populated(hub)
        other = await hub.tenant("other")
        r = await t.owner.get("/auth/me/export")
        assert r.status_code == 200, await r.get_data(as_text=True)
        body = await r.get_data()
        files = opened(body)
        rows = checked(files, export.USER_KINDS)
        _no_secrets(body, files, secrets)
        assert rows["account"] == [{"id": str(t.user.id), "email": t.user.email, "platform_admin": False,
                                    "totp": True, "created_at": rows["account"][0]["created_at"]}]
        assert [m["tenant_id"] for m in rows["memberships"]] == [str(t.id)]
        assert rows["sessions"] and all(s["mfa_ok"] for s in rows["sessions"])
        assert [sorted(k["scopes"]) for k in rows["tokens"]] == [["billing", "deploy", "read", "write"]]
        assert rows["audit"] and {e["actor"] for e in rows["audit"]} == {f"user:{t.user.email}"}
        assert other.user.email.encode() not in body
        entry = await AuditEntry.filter(action="privacy.export").get()
        assert entry.actor == f"user:{t.user.email}" and entry.target == f"user:{t.user.id}"
        assert entry.tenant_id is None

        r = await hub.client().get("/auth/me/export")
        assert r.status_code == 401
        r = await t.token.get("/auth/me/export")
        assert r.status_code == 401


@BOTH
async def test_only_the_tenants_admins_may_export(hub):
    t = await hub.tenant()
    other = await hub.tenant("other")
    r = await other.owner.get(t.base + "/export")
    assert r.status_code == 404
    viewer = await hub.user()
    await Membership.create(user_id=viewer.id, tenant_id=t.id, role="viewer")
    r = await (await hub.login(viewer.email)).get(t.base + "/export")
    assert r.status_code == 403
    # API tokens have no `admin` scope: a tenant's whole data is for a signed-in admin.
    r = await t.token.get(t.base + "/export")
    assert r.status_code == 403
    r = await t.owner.get("/api/v1/tenants/not-a-uuid/export")
    assert r.status_code == 404
    r = await t.owner.get(f"/api/v1/tenants/{uuid.uuid4()}/export")
    assert r.status_code == 404
    assert not await AuditEntry.filter(action="privacy.export").exists()


async def test_one_export_at_a_time_per_caller(hub):
    from hub.blueprints import privacy

    t = await hub.tenant()
    held = privacy.EXPORTS.take(f"user:{t.user.email}", 1)
    try:
        r = await t.owner.get(t.base + "/export")
        assert r.status_code == 429 and "exports" in (await r.get_json())["message"]
        r = await t.owner.get("/auth/me/export")
        assert r.status_code == 429
    finally:
        held.release()
    r = await t.owner.get(t.base + "/export")
    assert r.status_code == 200
    await r.get_data()
    assert not privacy.EXPORTS.held  # given back once the answer was sent


@pytest.mark.parametrize("text, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("a=b", "a=b"), ("", ""),
])
def test_csv_cells_that_look_like_formulas_are_defused(text, cell):
    assert export.csv_cell(export.Field("s", "string", ""), text) == cell


def test_csv_cells_of_other_types():
    assert export.csv_cell(export.Field("n", "integer", ""), -5) == "-5"
    assert export.csv_cell(export.Field("b", "boolean", ""), True) == "true"
    assert export.csv_cell(export.Field("o", "object", ""), {"b": ["=x"], "a": 1}) == '{"a":1,"b":["=x"]}'
    assert export.csv_cell(export.Field("o", "string", "", nullable=True), None) == ""


def test_no_kind_has_a_secret_field():
    names = {f.name for kind in (*export.TENANT_KINDS, *export.USER_KINDS) for f in kind.fields}
    assert not names & {"password_hash", "totp_secret", "totp_pending_secret", "secret", "secret_hash",
                        "credential_hash", "code_hash", "token_hash", "id_hash", "csrf_token", "plan_json"}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak RSS, to the current RSS


ENTRIES = 100_000


async def test_a_large_list_exports_in_bounded_memory(hub, monkeypatch):
    # Small spools, so that the archive and the CSV move to disk here as a big tenant's would.
    monkeypatch.setattr(export, "SPOOL_BYTES", 1 << 20)
    t = await hub.tenant()
    ip_list = await IpList.create(tenant_id=t.id, name="big", kind="deny", revision=1)
    for start in range(0, ENTRIES, 20_000):
        await IpEntry.bulk_create([
            IpEntry(ip_list_id=ip_list.id, network=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32",
                    comment=f"entry number {i}", added_rev=1)
            for i in range(start, start + 20_000)])
    before = _rss_kib("VmRSS")
    _reset_peak()
    r = await t.owner.get(t.base + "/export")
    assert r.status_code == 200
    body = await r.get_data()
    growth_mib = (_rss_kib("VmHWM") - before) / 1024
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        raw_mib = sum(i.file_size for i in zf.infolist()) / (1 << 20)
        with zf.open("list_entries.json") as f:
            head = f.read(200)
    print(f"\nexport of {ENTRIES} entries: archive {len(body) / (1 << 20):.1f} MiB, "
          f"uncompressed {raw_mib:.1f} MiB, peak RSS growth {growth_mib:.1f} MiB")
    assert b"10.0.0.0/32" in head
    # Holding the rows (or the uncompressed files) whole would cost many times this.
    assert growth_mib < raw_mib / 4
