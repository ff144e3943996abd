"""Hostile input against the hub (issue 12): each test reproduces an attack that once
gave a 500, grew state without bound, or outlived its credential."""
from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub import json_bounds
from tests.hub.harness import HubHarness, enroll

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

    monkeypatch.setattr(policies, "_write_version", broken)
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


# --- item 13: serving and files ----------------------------------------------------------

def test_serve_on_a_taken_port_says_so_in_one_line_and_exits_2(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with taken:
        port = taken.getsockname()[1]
        env = {**os.environ, "BULWARK_HUB_DATA_DIR": str(tmp_path)}
        done = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))",
                               "serve", "--bind", f"127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                              timeout=60, cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == 2
    said = f"bulwark hub: cannot listen on 127.0.0.1:{port}: the port is taken (another process listens there)"
    assert done.stderr.strip().splitlines() == [said]


async def test_readyz_does_not_echo_exception_text(hub, monkeypatch):
    from tortoise.context import get_current_context

    ctx = get_current_context()

    def broken(name):
        raise RuntimeError("/secret/path/to/db password=hunter2")

    monkeypatch.setattr(ctx, "db", broken)
    r = await hub.client().get("/readyz")
    assert r.status_code == 503
    text = await r.get_data(as_text=True)
    assert "hunter2" not in text and "secret" not in text


def test_hub_files_are_private_whatever_the_umask(tmp_path):
    import asyncio

    old = os.umask(0)
    try:
        harness = HubHarness(tmp_path)

        async def run():
            async with harness:
                pass

        asyncio.run(run())
    finally:
        os.umask(old)
    data = Path(harness.config.data_dir)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("hub.sqlite3", "secret_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    for extra in data.glob("hub.sqlite3-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra


def test_the_secret_key_is_made_once_by_racing_workers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from hub.config import load_config

    config = load_config(env={}, data_dir=str(tmp_path / "d"))
    with ThreadPoolExecutor(16) as pool:
        keys = set(pool.map(lambda _: config.resolved_secret_key(), range(64)))
    assert len(keys) == 1 and len(keys.pop()) > 40
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["secret_key"]


def test_the_agent_state_dir_is_private(tmp_path):
    from agent.config import AgentConfig
    from agent.hub_link import save_credential

    old = os.umask(0)
    try:
        cfg = AgentConfig(state_root=str(tmp_path))
        save_credential(cfg, "https://hub", "id", "secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(cfg.state_dir.stat().st_mode) == 0o700


# --- item 12: headers and the docs page --------------------------------------------------

def _assert_secure_headers(r, *, hsts: bool = False) -> None:
    csp = r.headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'self'"):
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("Referrer-Policy") in {"no-referrer", "same-origin", "strict-origin"}
    assert ("Strict-Transport-Security" in r.headers) is hsts


async def test_every_answer_carries_the_security_headers(hub):
    t = await hub.tenant()
    client = hub.client()
    answers = [await client.get("/healthz"), await client.get("/api/v1/nowhere"),
               await client.post("/agent/v1/desired", json={}),  # the agent fast path, 401
               await client.post("/auth/login", json={"email": "x@example.com", "password": "wrong"}),
               await t.token.get(t.base + "/policies"), await client.get("/api/v1/openapi.json"),
               await client.get("/api/v1/docs")]
    assert [r.status_code for r in answers] == [200, 404, 401, 401, 200, 200, 200]
    for r in answers:
        _assert_secure_headers(r)


async def test_hsts_only_with_an_https_public_url(tmp_path):
    async with HubHarness(tmp_path, public_url="https://hub.example.com") as hub:
        r = await hub.client().get("/healthz")
        _assert_secure_headers(r, hsts=True)
        assert "max-age=" in r.headers["Strict-Transport-Security"]


async def test_answers_carrying_secrets_are_not_stored(hub):
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/tokens", json={"name": "n", "scopes": ["read"]})
    assert r.status_code == 201 and r.headers.get("Cache-Control") == "no-store"
    r = await t.token.post(t.base + "/join-tokens", json={"ttl_s": 60, "labels": []})
    assert r.status_code == 201 and r.headers.get("Cache-Control") == "no-store"
    r = await t.owner.post("/auth/2fa/setup")
    assert r.status_code == 200 and r.headers.get("Cache-Control") == "no-store"


async def test_swagger_ui_is_served_from_vendored_files_without_inline_script(hub):
    import re

    from hub.blueprints import docs

    client = hub.client()
    page = await (await client.get("/api/v1/docs")).get_data(as_text=True)
    assert "cdn" not in page.lower() and "http" not in page
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page and "onload" not in page
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        r = await client.get(url)
        assert r.status_code == 200, url
        assert "Content-Security-Policy" in r.headers
    vendored = docs.STATIC / docs.SWAGGER_UI
    assert (vendored / "LICENSE").is_file() and json.loads((vendored / "package.json").read_text())["version"] \
        == docs.SWAGGER_UI.rsplit("-", 1)[1]


# --- item 7: sign-in throttling ----------------------------------------------------------

WRONG = "wrong password!"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_parallel_wrong_passwords_get_at_most_the_limit_of_401s(hub, backend):
    import asyncio

    user = await hub.user()
    client = hub.client()
    answers = await asyncio.gather(*(client.post("/auth/login", json={"email": user.email, "password": WRONG})
                                     for _ in range(100)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {401, 429}
    assert codes.count(401) <= hub.config.login_max_failures, codes.count(401)
    assert codes.count(429) >= 100 - hub.config.login_max_failures


async def _login(client, email, password=WRONG, via=None):
    headers = {"X-Forwarded-For": via} if via else {}
    r = await client.post("/auth/login", json={"email": email, "password": password}, headers=headers,
                          scope_base={"client": ("127.0.0.1", 40000)})
    return r.status_code


async def test_forwarded_for_counts_only_from_trusted_proxies(tmp_path):
    from tests.hub.harness import PASSWORD

    async with HubHarness(tmp_path) as hub:  # no trusted proxy: the header is the caller's to forge
        user = await hub.user()
        client = hub.client()
        codes = [await _login(client, user.email, via=f"198.51.100.{i}") for i in range(8)]
        assert codes.count(401) == hub.config.login_max_failures
    async with HubHarness(tmp_path / "2", trusted_proxies=("127.0.0.0/8", "::1")) as hub:
        user = await hub.user()
        client = hub.client()
        limit = hub.config.login_max_failures
        assert [await _login(client, user.email, via="10.9.9.9, 198.51.100.7") for _ in range(limit + 1)] \
            == [401] * limit + [429]
        # Another client behind the same proxy still signs in; the proxy's own address never counts.
        assert await _login(client, user.email, PASSWORD, via="198.51.100.8") == 200
        # IPv6 callers share their /64.
        assert [await _login(client, user.email, via=f"2001:db8:1:2::{i:x}") for i in range(1, limit + 2)] \
            == [401] * limit + [429]
        assert await _login(client, user.email, PASSWORD, via="2001:db8:1:3::1") == 200


def test_client_address_and_throttle_key():
    from hub.callers import client_address, throttle_key

    trusted = ("10.0.0.0/8",)
    assert client_address("192.0.2.1", ["203.0.113.9"], trusted) == "192.0.2.1"
    assert client_address("10.0.0.1", ["203.0.113.9, 10.0.0.2"], trusted) == "203.0.113.9"
    assert client_address("10.0.0.1", ["1.2.3.4", "203.0.113.9"], trusted) == "203.0.113.9"
    assert client_address("10.0.0.1", ["garbage"], trusted) == "10.0.0.1"
    assert client_address("10.0.0.1", [], ()) == "10.0.0.1"
    assert throttle_key("2001:db8::1") == throttle_key("2001:db8::ffff") == "2001:db8::/64"
    assert throttle_key("::ffff:192.0.2.1") == "192.0.2.1" == throttle_key("192.0.2.1")


async def test_a_lockout_ends_within_the_window_however_hard_it_is_hammered(hub):
    import datetime as dt

    from hub.models import LoginFailure
    from tests.hub.harness import PASSWORD

    user = await hub.user()
    client = hub.client()
    limit = hub.config.login_max_failures
    assert [await _login(client, user.email) for _ in range(limit)] == [401] * limit
    recorded = await LoginFailure.all().count()
    for _ in range(30):
        r = await client.post("/auth/login", json={"email": user.email, "password": WRONG},
                              scope_base={"client": ("127.0.0.1", 40000)})
        assert r.status_code == 429
        assert 0 < int(r.headers["Retry-After"]) <= hub.config.login_window_s
    assert await LoginFailure.all().count() == recorded  # refused guesses extend nothing
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=hub.config.login_window_s + 1)
    await LoginFailure.all().update(at=past)  # the window passes
    assert await _login(client, user.email, PASSWORD) == 200


# --- item 3: metrics values, group commits, quotas --------------------------------------

BIG = 2**63 - 1


@pytest.mark.parametrize("point", [{"packets": 2**64}, {"bytes": 2**63}, {"ts": 2**64}])
async def test_out_of_range_metric_values_are_a_400(hub, point):
    import time

    t = await hub.tenant()
    a = await enroll(t)
    body = {"points": [{"ts": int(time.time()), "rule": "r", "packets": 1, "bytes": 1, **point}]}
    r = await a.post("/agent/v1/metrics", json=body)
    assert r.status_code == 400, await r.get_data(as_text=True)
    r = await a.post("/agent/v1/metrics", json={"top_sources": [{"ts": int(time.time()), "source": "192.0.2.1",
                                                                  "packets": 2**64}]})
    assert r.status_code == 400


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_sums_past_int64_saturate_in_rollups_and_top_sources(hub, backend):
    import time

    from hub.services import metrics

    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    base = now - now % 60 - 120
    for _ in range(3):
        r = await a.post("/agent/v1/metrics", json={
            "points": [{"ts": base + 1, "rule": "r", "packets": BIG, "bytes": BIG}],
            "top_sources": [{"ts": base + 1, "source": "192.0.2.1", "packets": BIG}]})
        assert r.status_code == 200, await r.get_data(as_text=True)
    r = await t.token.get(f"{t.base}/metrics/top-sources?start={base - 60}")
    assert r.status_code == 200, await r.get_data(as_text=True)
    assert (await r.get_json())["sources"] == [{"source": "192.0.2.1", "packets": BIG}]
    await metrics.rollup(hub.rt, now=base + 120)
    r = await t.token.get(f"{t.base}/metrics?resolution=rollup&start={base - 60}")
    assert [(p["packets"], p["bytes"]) for p in (await r.get_json())["points"]] == [(BIG, BIG)]


async def test_a_failing_batch_fails_only_itself_in_a_group_commit(hub, monkeypatch):
    import asyncio
    import time

    from hub.services import metrics

    t1, t2 = await hub.tenant("one"), await hub.tenant("two")
    bad, good = await enroll(t1), await enroll(t2)
    real = metrics.MetricsWriter._insert

    async def insert(batches):
        if any(str(b.agent_id) == bad.id for b in batches):
            raise RuntimeError("the database refused a row")
        await real(batches)

    monkeypatch.setattr(metrics.MetricsWriter, "_insert", staticmethod(insert))
    now = int(time.time())
    body = {"points": [{"ts": now, "rule": "r", "packets": 1, "bytes": 1}]}
    answers = await asyncio.gather(*(c.post("/agent/v1/metrics", json=body) for c in (bad, good) * 10))
    assert [r.status_code for r in answers] == [500, 200] * 10
    writer = hub.app.extensions["bulwark_metrics"]
    assert writer.writes.loads < 20  # they did share group commits


async def test_each_agent_has_a_rate_and_size_quota(tmp_path):
    import time

    async with HubHarness(tmp_path, metrics_agent_rows_per_s=1, metrics_agent_burst_rows=10,
                          max_metrics_points=10) as hub:
        t = await hub.tenant()
        a, b = await enroll(t), await enroll(t, hostname="web2")
        now = int(time.time())
        body = {"points": [{"ts": now, "rule": f"r{i}", "packets": 1, "bytes": 1} for i in range(6)]}
        assert (await a.post("/agent/v1/metrics", json=body)).status_code == 200
        r = await a.post("/agent/v1/metrics", json=body)
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 10
        assert (await b.post("/agent/v1/metrics", json=body)).status_code == 200  # per agent


def test_quota_refills_at_its_rate():
    from hub.errors import TooManyRequests
    from hub.services.quota import Quota

    clock = [0.0]
    q = Quota(rate=10, capacity=100, clock=lambda: clock[0])
    q.take("a", 100)
    with pytest.raises(TooManyRequests) as err:
        q.take("a", 50)
    assert err.value.retry_after_s == 5
    clock[0] = 5.0
    q.take("a", 50)


async def test_the_agent_sends_its_backlog_in_chunks_the_hub_accepts(hub):
    import time

    from agent.hub_link import metrics_body, metrics_chunk
    from agent.messages import MetricsBatch

    t = await hub.tenant()
    a = await enroll(t)
    now = int(time.time())
    backlog = collections.deque(
        MetricsBatch(now - 600 + i, 1.0, tuple((f"r{j}", 1, 60) for j in range(15)),
                     tuple((f"192.0.2.{j}", 1) for j in range(5))) for i in range(600))
    whole = await a.post("/agent/v1/metrics", json=metrics_body(list(backlog)))
    assert whole.status_code == 400  # what the agent used to send after an outage, for ever
    posts = 0
    while backlog:
        n = metrics_chunk(backlog)
        r = await a.post("/agent/v1/metrics", json=metrics_body([backlog.popleft() for _ in range(n)]))
        assert r.status_code == 200, await r.get_data(as_text=True)
        posts += 1
    assert posts == 6


def test_metrics_chunks_and_what_the_agent_drops():
    from agent.hub_link import REFUSED_FOR_GOOD, metrics_chunk
    from agent.messages import MetricsBatch

    def batch(n):
        return MetricsBatch(0, 1.0, tuple(("r", 1, 1) for _ in range(n)))

    assert metrics_chunk([batch(10)] * 5, max_rows=25) == 2
    assert metrics_chunk([batch(100), batch(1)], max_rows=25) == 1  # one too big still moves on
    assert metrics_chunk([], max_rows=25) == 0
    assert 429 not in REFUSED_FOR_GOOD and 400 in REFUSED_FOR_GOOD


# --- item 8: fresh proof for password and factor changes ---------------------------------

async def _age_sessions(seconds: int) -> None:
    import datetime as dt

    from hub.models import Session as SessionRow

    await SessionRow.all().update(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds))


async def _enable_totp(s):
    import pyotp

    uri = (await (await s.post("/auth/2fa/setup")).get_json())["otpauth_uri"]
    totp = pyotp.parse_uri(uri)
    r = await s.post("/auth/2fa/confirm", json={"code": totp.now()})
    assert r.status_code == 200, await r.get_data(as_text=True)
    return totp


async def test_a_stolen_session_cannot_replace_the_factors(hub):
    from hub.models import User
    from tests.hub.harness import PASSWORD

    user = await hub.user()
    s = await hub.login(user.email)
    totp = await _enable_totp(s)
    await _age_sessions(6 * 60)  # the cookie an attacker holds is not a fresh proof
    for path, body in (("/auth/2fa/setup", None), ("/auth/2fa/confirm", {"code": totp.now()}),
                       ("/auth/2fa/recovery-codes", {"code": totp.now()}), ("/auth/password", {"new_password": "x" * 16})):
        r = await s.post(path, json=body)
        assert r.status_code == 403, (path, await r.get_data(as_text=True))
    assert (await s.post("/auth/reauth", json={"password": PASSWORD})).status_code == 401  # the code is needed too
    await User.filter(id=user.id).update(totp_last_step=None)
    r = await s.post("/auth/reauth", json={"password": PASSWORD, "code": totp.now()})
    assert r.status_code == 200, await r.get_data(as_text=True)
    s.csrf = (await r.get_json())["csrf_token"]
    assert (await s.post("/auth/2fa/setup")).status_code == 200


async def test_a_password_change_needs_fresh_proof_and_ends_other_sessions(hub):
    from tests.hub.harness import PASSWORD

    user = await hub.user()
    other = await hub.login(user.email)
    s = await hub.login(user.email)
    await _age_sessions(6 * 60)
    assert (await s.post("/auth/password", json={"new_password": "a brand new password"})).status_code == 403
    r = await s.post("/auth/reauth", json={"password": PASSWORD, "code": await hub.code(user.email)})
    s.csrf = (await r.get_json())["csrf_token"]
    assert (await s.post("/auth/password", json={"new_password": "short"})).status_code == 400
    r = await s.post("/auth/password", json={"new_password": "a brand new password"})
    assert r.status_code == 200 and (await r.get_json())["other_sessions_ended"] == 1
    assert (await other.get("/auth/me")).status_code == 401
    assert (await s.get("/auth/me")).status_code == 200
    await hub.login(user.email, "a brand new password")


async def test_turning_2fa_on_ends_other_sessions(hub):
    user = await hub.user(totp=False)
    other = await hub.login(user.email)
    s = await hub.login(user.email)
    await _enable_totp(s)
    assert (await other.get("/auth/me")).status_code == 401
    assert (await s.get("/auth/me")).status_code == 200


async def test_platform_operators_act_only_with_2fa(hub):
    t = await hub.tenant()
    admin = await hub.user(platform_admin=True, totp=False)
    s = await hub.login(admin.email)
    r = await s.get(t.base + "/policies")  # no operator powers yet: nothing but the 2FA set-up
    assert r.status_code == 403 and (await r.get_json())["error"] == "second_factor_required"
    await _enable_totp(s)
    assert (await s.get(t.base + "/policies")).status_code == 200


# --- item 9: metrics streams end with their credential -----------------------------------

async def _read_until_end(conn) -> bytes:
    """What the stream sends until it closes (the hub ended it)."""
    chunks = []
    while True:
        try:
            chunk = await conn.receive()
        except Exception:  # the test connection raises once the body is complete
            break
        chunks.append(chunk)
        if b"event: end" in chunk:
            break
    return b"".join(chunks)


async def test_a_stream_ends_when_its_token_is_revoked(hub, monkeypatch):
    import asyncio

    from hub.blueprints import metrics as metrics_bp

    monkeypatch.setattr(metrics_bp, "STREAM_RECHECK_S", 0.05)
    t = await hub.tenant()
    r = await t.owner.post(t.base + "/tokens", json={"name": "s", "scopes": ["read"]})
    body = await r.get_json()
    client = hub.client()
    async with client.request(f"{t.base}/metrics/stream?max_s=600",
                              headers={"Authorization": f"Bearer {body['token']}"}) as conn:
        await conn.send_complete()
        assert b"connected" in await conn.receive()
        assert (await t.owner.delete(f"{t.base}/tokens/{body['id']}")).status_code in (200, 204)
        ended = await asyncio.wait_for(_read_until_end(conn), 30)  # a guard, not a timing
    assert b"event: end" in ended


async def test_a_stream_ends_when_its_session_ends(hub, monkeypatch):
    import asyncio

    from hub.blueprints import metrics as metrics_bp

    monkeypatch.setattr(metrics_bp, "STREAM_RECHECK_S", 0.05)
    t = await hub.tenant()
    async with t.owner.client.request(f"{t.base}/metrics/stream?max_s=600") as conn:
        await conn.send_complete()
        assert b"connected" in await conn.receive()
        other = hub.client()
        r = await other.post("/auth/login", json={"email": t.user.email, "password": "correct horse battery staple"})
        assert r.status_code == 200
        from hub.models import Session as SessionRow

        await SessionRow.filter(user_id=t.user.id).delete()  # signed out everywhere
        ended = await asyncio.wait_for(_read_until_end(conn), 30)
    assert b"event: end" in ended


async def test_streams_per_principal_are_capped(hub):
    t = await hub.tenant()
    headers = {"Authorization": f"Bearer {t.token.token}"}
    limit = hub.config.metrics_streams_per_principal
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(limit):
            conn = await stack.enter_async_context(hub.client().request(f"{t.base}/metrics/stream?max_s=60",
                                                                        headers=headers))
            stack.push_async_callback(conn.disconnect)
            await conn.send_complete()
            assert b"connected" in await conn.receive()
        r = await t.token.get(f"{t.base}/metrics/stream?max_s=1")
        assert r.status_code == 429 and "Retry-After" in r.headers
        other = await t.make_token(["read"])  # another principal has its own slots
        async with hub.client().request(f"{t.base}/metrics/stream?max_s=60",
                                        headers={"Authorization": f"Bearer {other.token}"}) as conn:
            await conn.send_complete()
            assert b"connected" in await conn.receive()
            await conn.disconnect()


# --- against a real Hypercorn-served hub ---------------------------------------------------

def test_a_served_hub_bounds_json_labels_methods_and_sends_headers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from hub.config import load_config
    from tests.hub.test_schemathesis import served

    config = load_config(env={}, data_dir=str(tmp_path / "hub"), argon2_memory_kib=1024, argon2_time_cost=1)
    with served(config) as url, requests.Session() as http:
        for path in ("/auth/login", "/agent/v1/status", "/agent/v1/metrics"):
            r = http.post(url + path, data=DEEP, headers={"Content-Type": "application/json"}, timeout=10)
            assert r.status_code == 400, (path, r.status_code, r.text[:200])
            assert r.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in r.headers
        for i in range(20):
            assert http.request(f"M{i}X", url + "/healthz", timeout=10).status_code in (400, 405)
        assert "M1X" not in http.get(url + "/metrics", timeout=10).text

        def guess(_):
            with requests.Session() as s:
                return s.post(url + "/auth/login", json={"email": "root@example.com", "password": WRONG},
                              timeout=30).status_code

        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(guess, range(40)))
        assert codes.count(401) <= config.login_max_failures and set(codes) <= {401, 429}


@pytest.mark.parametrize("settings", [{"trusted_proxies": ("not-an-address",)}, {"metrics_agent_rows_per_s": 0},
                                      {"metrics_agent_burst_rows": 10}, {"metrics_streams_per_principal": 0}])
def test_bad_hardening_settings_are_startup_errors(settings):
    from hub.config import load_config
    from hub.errors import ConfigError

    with pytest.raises(ConfigError):
        load_config(env={}, **settings)


def test_shallow_json_with_many_brackets_in_strings_still_parses():
    """The bracket count only decides whether to scan: brackets in strings do not refuse."""
    text = json.dumps({"a": "[{" * 100, "b": [[1]]})
    assert json_bounds.loads(text) == {"a": "[{" * 100, "b": [[1]]}
    with pytest.raises(json_bounds.TooDeep):
        json_bounds.loads("[" * 33 + "]" * 33)
    assert json_bounds.loads("[" * 32 + "]" * 32) is not None
