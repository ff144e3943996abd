"""The hub link actor (managed mode): desired state streamed, status and metrics out.

Protocol (docs/agent-protocol.md, hub/blueprints/agent_protocol.py), all POST JSON with
the agent credential as a bearer token:
    /agent/v1/enroll   {join_token, inventory} → {agent_id, credential}    (`enroll`, CLI)
    /agent/v1/desired  {etag, applied_digest, lists: {id: revision}, wait_s, stream: true}
                       → 200, a doc a line as the state changes, for wait_s (`follow`);
                       an older hub refuses `stream` (400): then one request a change, 200 doc | 204
    /agent/v1/status   {applied_digest, failed_digest, healthy, mode, list_revisions, errors, drift, xdp_mode}
    /agent/v1/metrics  {points: [...], top_sources: [...], traffic: [...]}

The hub's lists come as "current", "delta" (added/removed since our revision) or
"snapshot"; the link keeps each list's contents and hands the reconciler whole desired
states (with the deltas attached, so the maps can be edited entry by entry).
A hub mode of "none" (no deployment) changes nothing here: the agent keeps enforcing
what it has until told to deactivate. Reconnects back off exponentially with jitter.
A status report the hub accepted confirms the applied Plan (confirm-or-revert). Reports
wait while the hub is away; a newer one replaces an older one, except reports of a failure
(a refused or reverted Plan), which are all delivered, in order.
"""
from __future__ import annotations

import collections
import collections.abc
import itertools
import json
import os
import platform
import random
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from agent import transport, trust
from agent.capture import MAX_PENDING_IDS, CaptureError, Request, request_of
from agent.config import AgentConfig, ca_pin
from agent.entries import Entries, from_wire
from agent.errors import HubError, HubRejected, HubUnavailable, StateError
from agent.messages import Confirmed, MetricsBatch, Report
from agent.state import DELTA_MAX, Desired, ListState, StateStore, read_json, write_atomic
from agent.telemetry import Telemetry
from rules_dsl import Plan, PlanError
from rules_dsl.errors import AddressError

if TYPE_CHECKING:
    import httpx  # imported where used: a standalone daemon never loads it (~8 MB idle)

AGENT_VERSION = "0.1.0"
MAX_FAILURE_REPORTS = 8  # kept for the hub while it is away, beside the newest report
# Rows (points + top sources) per metrics post: well under the hub's max_metrics_points
# (5,000 by default), so a backlog drains in posts the hub accepts.
METRICS_CHUNK_ROWS = 2000
# Answers that mean "this body will never be accepted": the chunk is dropped, so the
# backlog behind it is not stuck. Anything else (429, 5xx, 401) is retried later.
REFUSED_FOR_GOOD = frozenset({400, 413, 422})


# ---- credential ----
def save_credential(config: AgentConfig, hub_url: str, agent_id: str, credential: str) -> Path:
    """The credential, with the hub's CA pin if enrolment was given one (`run` uses it)."""
    path = config.credential_path
    doc = {"hub_url": hub_url, "agent_id": agent_id, "credential": credential}
    if config.hub_ca_sha256:
        doc["hub_ca_sha256"] = ca_pin(config.hub_ca_sha256)
    write_atomic(path, json.dumps(doc).encode(), mode=0o600)
    os.chmod(path, 0o600)
    os.chmod(path.parent, 0o700)  # the state directory, even if made before by another version
    return path


def load_credential(config: AgentConfig) -> dict[str, str] | None:
    doc = read_json(config.credential_path)
    if doc is not None and not {"hub_url", "credential"} <= set(doc):
        raise StateError(f"{config.credential_path} is not a credential")
    return doc


def hub_endpoint(url: str) -> tuple[str | None, int]:
    """The hub's (address, port) as this host resolves it, for the lockout guard."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addr = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)[0][4][0]
    except (OSError, TypeError):
        addr = None
    return addr, port


MACHINE_ID = "/etc/machine-id"


def machine_id(path: str | None = None) -> str:
    """This machine's id (systemd's), or "" when absent or malformed."""
    path = path or MACHINE_ID
    try:
        with open(path, encoding="ascii") as f:
            value = f.read(64).strip()
    except (OSError, ValueError):  # absent, a directory, not ASCII
        return ""
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else ""


def agent_machine_id(name: str, path: str | None = None) -> str:
    """What the hub sees to notice a cloned machine: an app-specific id derived from
    /etc/machine-id and the agent's name (as systemd advises, the raw id is not sent).
    A clone has the same id and name; several agents of one machine (one per interface)
    differ by name."""
    import hashlib
    import hmac

    raw = machine_id(path)
    if not raw:
        return ""
    return hmac.new(bytes.fromhex(raw), f"bulwark-agent:{name}".encode(), hashlib.sha256).hexdigest()[:32]


def inventory(config: AgentConfig, xdp_mode: str | None = None) -> dict[str, Any]:
    return {"hostname": socket.gethostname()[:255], "machine_id": agent_machine_id(config.name),
            "interfaces": [{"name": config.iface}] if config.iface else [],
            "kernel": platform.release()[:200], "xdp_mode": xdp_mode or "none",
            "agent_version": AGENT_VERSION, "os": platform.platform()[:200]}


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 500:
        raise HubUnavailable(f"{what}: hub answered {resp.status_code}")
    if resp.status_code >= 400:
        try:
            detail = resp.json()
        except ValueError:
            detail = resp.text[:200]
        rejected = HubRejected(f"{what}: hub refused ({resp.status_code}): {detail}", resp.status_code)
        rejected.retry_after_s = _retry_after(resp)
        raise rejected


def _retry_after(resp: httpx.Response) -> float:
    """The hub's Retry-After in seconds (429), else 0."""
    try:
        return max(0.0, float(resp.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


def enroll(config: AgentConfig, hub_url: str, join_token: str, force: bool = False) -> dict[str, str]:
    """Enrol with a join token; stores the credential (mode 0600) and pins the hub's Plan
    key. Raises HubError, ConfigError (a plain-http hub not allowed, a pin that matches no CA)."""
    import httpx

    url = hub_url.rstrip("/") + "/agent/v1/enroll"
    options = transport.client_options(config, url)
    try:
        with httpx.Client(**options) as client:
            resp = client.post(url, json={"join_token": join_token, "inventory": inventory(config),
                                                 "force": force})
    except httpx.HTTPError as exc:
        raise HubUnavailable(f"enroll: cannot reach {hub_url}: {exc}") from exc
    _raise_for(resp, "enroll")
    doc = resp.json()
    trust.save_pin(config, doc["agent_id"], doc.get("plan_public_key"))
    save_credential(config, hub_url.rstrip("/"), doc["agent_id"], doc["credential"])
    return doc


# ---- desired state documents → Desired ----
def _packed(item: dict[str, Any], name: str) -> Entries:
    try:
        return from_wire(item.get(name, ""))
    except AddressError as exc:
        raise HubRejected(f"list {item.get('name')!r}: {name}: {exc}") from exc


class DesiredTracker:
    """What the hub has told us so far (plan, list contents), to turn each document into
    a whole desired state. Pure."""

    def __init__(self, start: Desired | None):
        self.plan: Plan | None = start.plan if start else None
        self.lists: dict[str, ListState] = {(x.id or x.name): x for x in (start.lists if start else ())}
        self.etag: str | None = None

    def known_revisions(self) -> dict[str, int]:
        return {k: v.revision for k, v in self.lists.items() if v.id}

    def update(self, doc: dict[str, Any]) -> Desired | None:
        """The desired state doc describes, or None when it asks for nothing (mode none).
        Raises HubError for a document that does not hold together."""
        self.etag = doc.get("etag")
        if "plan" in doc and doc["plan"] is not None:
            try:
                self.plan = Plan.from_json(json.dumps(doc["plan"]))
            except PlanError as exc:
                raise HubRejected(f"the hub sent a Plan that does not load: {exc}") from exc
        deployment = doc.get("deployment")
        if deployment and self.plan is not None and deployment.get("digest") not in (None, self.plan.digest):
            raise HubUnavailable("the hub named a Plan it did not send; asking again")
        deltas: list = []
        pure = True  # only deltas and unchanged lists: the maps can be edited in place
        lists: dict[str, ListState] = {}
        for item in doc.get("lists", []):
            key, name, rev = item["id"], item["name"], int(item["revision"])
            old = self.lists.get(key)
            if item["mode"] == "current" and old is not None:
                lists[key] = ListState(name, rev, old.entries, key)
            elif item["mode"] == "delta" and old is not None:
                added, removed = _packed(item, "added"), _packed(item, "removed")
                lists[key] = ListState(name, rev, old.entries.changed(added, removed), key)
                if len(added) + len(removed) > DELTA_MAX:
                    pure = False  # the maps rebuild anyway: spelling out a million entries costs seconds
                else:
                    deltas.append((name, tuple(added), old.entries.present(removed)))
            else:
                lists[key] = ListState(name, rev, _packed(item, "entries"), key)
                pure = False
        self.lists = lists
        mode = doc.get("mode", "none")
        if mode == "none":
            return None
        if mode in ("enforce", "monitor") and self.plan is None:
            raise HubUnavailable("the hub sent no Plan; asking again")
        clean = tuple(deltas) if pure else ()
        return Desired(mode=mode, plan=self.plan, lists=tuple(lists.values()), source="hub",
                       etag=self.etag, deployment_id=(deployment or {}).get("id"), deltas=clean,
                       signature=doc.get("signature"))


# The longest line a streamed answer may have: a document with a million-entry IPv6 list
# is about 23 MB of base64. Past it the hub is not one to trust with memory.
MAX_DOCUMENT_BYTES = 64 * 2**20


async def document_lines(chunks: collections.abc.AsyncIterator[bytes],
                         max_bytes: int = MAX_DOCUMENT_BYTES) -> collections.abc.AsyncIterator[bytes]:
    """The non-empty lines of a streamed answer, each at most `max_bytes` (raises
    HubRejected past it), as the chunks bring them; a last line without its newline
    was cut off and is dropped."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        while chunk:
            end = chunk.find(b"\n")
            piece, chunk = (chunk, b"") if end < 0 else (chunk[:end], chunk[end + 1:])
            size += len(piece)
            if size > max_bytes:
                raise HubRejected(f"desired: a document of more than {max_bytes} bytes")
            parts.append(piece)
            if end >= 0:
                line, parts, size = b"".join(parts), [], 0
                if line.strip():
                    yield line


class Reports:
    """Status reports waiting for the hub, oldest first. A newer report replaces the older
    ones, except reports of a failure (a refused or reverted Plan): the hub must hear each
    of those, in order (it marks that deployment failed), even when it was away while the
    agent moved on. Pure."""

    def __init__(self, max_failures: int = MAX_FAILURE_REPORTS):
        self.waiting: list[Report] = []
        self.max_failures = max_failures

    def add(self, report: Report) -> None:
        failures = [r for r in self.waiting if r.failed_digest][-self.max_failures:]
        self.waiting = [*failures, report]

    def next(self) -> Report | None:
        return self.waiting[0] if self.waiting else None

    def sent(self, report: Report) -> None:
        """The hub accepted `report` (it may have been replaced meanwhile)."""
        self.waiting = [r for r in self.waiting if r is not report]


def status_body(report: Report, *, healthy: bool = True) -> dict[str, Any]:
    return {"applied_digest": report.applied_digest, "failed_digest": report.failed_digest,
            "healthy": healthy and not report.errors, "mode": report.mode,
            "list_revisions": dict(report.list_revisions),
            "errors": [e[:500] for e in report.errors][:100], "drift": list(report.drift)[:100],
            "xdp_mode": report.xdp_mode if report.xdp_mode in ("native", "generic") else "none"}


def rows(batch: MetricsBatch) -> int:
    return len(batch.points) + len(batch.top_sources) + len(batch.traffic)


def metrics_chunk(buffer: collections.abc.Iterable[MetricsBatch], max_rows: int = METRICS_CHUNK_ROWS) -> int:
    """How many of the oldest batches go in the next post: as many as fit in `max_rows`
    (the hub refuses larger bodies), and at least one."""
    n = total = 0
    for batch in buffer:
        total += rows(batch)
        if n and total > max_rows:
            break
        n += 1
    return n


def metrics_body(batches: list[MetricsBatch]) -> dict[str, Any]:
    points, sources, aggregates = [], [], []
    for b in batches:
        interval = max(1, min(3600, round(b.interval_s)))
        points += [{"ts": b.ts, "rule": rule, "packets": p, "bytes": n, "interval_s": interval}
                   for rule, p, n in b.points]
        sources += [{"ts": b.ts, "source": s, "packets": n} for s, n in b.top_sources]
        aggregates += [{"ts": b.ts, "kind": k, "proto": p, "value": v, "packets": n} for k, p, v, n in b.traffic]
    return {"points": points, "top_sources": sources, "traffic": aggregates}


# ---- the actor ----
async def run(config: AgentConfig, *, inbox, outbox, store: StateStore, telemetry: Telemetry,
              credential: dict[str, str], rng: random.Random | None = None,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    import httpx

    rng = rng or random.Random()
    base = credential["hub_url"].rstrip("/") + "/agent/v1"
    headers = {"Authorization": f"Bearer {credential['credential']}"}
    try:
        start = store.load()  # the reconciler's copy (the store keeps it): one big list, not two
    except StateError:
        start = None
    tracker = DesiredTracker(start if start is not None and start.source in ("hub", "revert") else None)
    del start  # the tracker keeps what it needs; a policy state is not the hub's to hold
    reports = Reports()
    buffer: collections.deque[MetricsBatch] = collections.deque(maxlen=config.buffer_max_batches)
    wake = trio.Event()

    def backoff(attempt: int) -> float:
        return min(config.backoff_max_s, config.backoff_initial_s * 2 ** attempt) * rng.uniform(0.5, 1.5)

    async def post(client: httpx.AsyncClient, path: str, body: dict, *, timeout: float | None = None):
        try:
            resp = await client.post(f"{base}/{path}", json=body, headers=headers,
                                     timeout=timeout or config.http_timeout_s)
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"{path}: {exc!r}") from exc
        _raise_for(resp, path)
        return resp

    following = trio.CancelScope()  # the streamed answer being read (`poll`)
    streaming = True  # False once the hub refused the streamed form (a hub older than it)

    async def poll(client: httpx.AsyncClient) -> None:
        nonlocal following, streaming
        attempt = 0
        while True:
            # the Plan the link holds, so that the hub sends any other (after a revert, ours
            # differs from the hub's deployment, and a rollback may name the one we hold)
            held = tracker.plan.digest if tracker.plan is not None else None
            body = {"etag": tracker.etag, "applied_digest": held,
                    "lists": tracker.known_revisions(), "wait_s": config.long_poll_s}
            try:
                with trio.CancelScope() as following:
                    if streaming:
                        await follow(client, {**body, "stream": True})
                    else:
                        resp = await post(client, "desired", body, timeout=config.long_poll_s + config.http_timeout_s)
                        telemetry.hub.update(connected=True, last_contact=trio.current_time())
                        if resp.status_code != 204:
                            await take(client, resp.json())
                attempt = 0
            except HubError as exc:
                if streaming and isinstance(exc, HubRejected) and exc.status == 400:
                    streaming = False  # an older hub: one request a change
                    continue
                telemetry.hub.update(connected=False, error=str(exc))
                tracker.etag = None  # ask for the whole state when back
                await trio.sleep(backoff(attempt))
                attempt += 1

    async def follow(client: httpx.AsyncClient, body: dict) -> None:
        """Read one streamed answer: a document a line, each change as it happens, until
        the hub ends it (after `wait_s`, or with an error as its last line)."""
        timeout = httpx.Timeout(config.http_timeout_s, read=config.long_poll_s + config.http_timeout_s)
        try:
            async with client.stream("POST", f"{base}/desired", json=body, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    _raise_for(resp, "desired")
                    return  # 204: nothing new
                telemetry.hub.update(connected=True, last_contact=trio.current_time())
                async for line in document_lines(resp.aiter_bytes()):
                    doc = json.loads(line)
                    if not isinstance(doc, dict):
                        raise HubUnavailable(f"desired: not a document: {line[:80]!r}")
                    if "error" in doc:
                        raise HubRejected(f"desired: the hub ended the stream: {doc}")
                    telemetry.hub.update(last_contact=trio.current_time())
                    await take(client, doc)
        except httpx.HTTPError as exc:
            raise HubUnavailable(f"desired: {exc!r}") from exc
        except ValueError as exc:
            raise HubUnavailable(f"desired: not a document: {exc}") from exc

    async def take(client: httpx.AsyncClient, doc: dict) -> None:
        if doc.get("capture") is not None:
            start_capture(client, doc["capture"])
        desired = tracker.update(doc)
        if desired is not None:
            await outbox.send(desired)

    captures_started: collections.deque[str] = collections.deque(maxlen=MAX_PENDING_IDS)

    def start_capture(client: httpx.AsyncClient, asked: object) -> None:
        """Start the capture the desired state asks for, once per id; a request that is not
        one (agent.capture.request_of) is reported, never obeyed."""
        try:
            wanted = request_of(asked)
        except CaptureError as exc:
            telemetry.hub.update(error=f"capture refused: {exc}")
            return
        if wanted.id not in captures_started:
            captures_started.append(wanted.id)
            nursery.start_soon(capture, client, wanted)

    async def capture(client: httpx.AsyncClient, wanted: Request) -> None:
        """The bounded capture the hub asked for, recorded in a worker thread (in the
        interface's namespace) and uploaded; a failure is reported and not retried."""
        from agent.capture import record
        from bpf import in_netns

        def go():
            with in_netns(config.netns):
                return record(config.iface or "lo", wanted.limits)

        try:
            done = await trio.to_thread.run_sync(go)
            resp = await client.post(f"{base}/captures/{wanted.id}", content=done.pcap,
                                     headers={**headers, "Content-Type": "application/vnd.tcpdump.pcap"},
                                     timeout=config.http_timeout_s * 4)
            _raise_for(resp, "captures")
        except Exception as exc:  # noqa: BLE001 (a capture, whatever fails in it, never ends the link)
            telemetry.hub.update(error=f"capture {wanted.id}: {exc}")

    async def receive() -> None:
        async for msg in inbox:
            if isinstance(msg, Report):
                reports.add(msg)
                if msg.failed_digest:
                    tracker.etag = None  # make the hub answer again after a revert or failure
                    following.cancel()  # (a streamed answer would only say what changes next)
            elif isinstance(msg, MetricsBatch):
                buffer.append(msg)
            wake.set()

    async def send(client: httpx.AsyncClient) -> None:
        nonlocal wake
        attempt = 0
        while True:
            with trio.move_on_after(max(config.sample_interval_s * 5, 1.0)):
                await wake.wait()
            wake = trio.Event()
            try:
                while (report := reports.next()) is not None:
                    await post(client, "status", status_body(report))
                    reports.sent(report)
                    await outbox.send(Confirmed(report.applied_digest))
                while buffer:
                    n = metrics_chunk(buffer)
                    try:
                        await post(client, "metrics", metrics_body(list(itertools.islice(buffer, n))))
                    except HubRejected as exc:
                        if exc.status not in REFUSED_FOR_GOOD:
                            raise
                        telemetry.hub.update(error=f"dropped {n} metrics batch(es): {exc}")
                    for _ in range(n):
                        buffer.popleft()
                attempt = 0
            except HubError as exc:
                telemetry.hub.update(connected=False, error=str(exc))
                wait = getattr(exc, "retry_after_s", 0.0)
                await trio.sleep(max(backoff(attempt), min(wait, config.backoff_max_s * 10)))
                attempt += 1
                wake.set()

    async with inbox, outbox, httpx.AsyncClient(**transport.client_options(config, base)) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)  # `capture` tasks join this nursery too
            nursery.start_soon(send, client)
            nursery.start_soon(poll, client)
            task_status.started()
