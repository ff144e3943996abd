"""The public API as a state machine: schemathesis follows the document's links.

Where tests/hub/test_schemathesis.py pins every id to a seeded object and tries each
operation alone, this run starts from nothing but a tenant's API token and the
document: it lists the tenant, creates policies, lists, channels and tokens, deploys
what it created, changes and reads back what it made, and feeds each answer's ids into
the next request through the OpenAPI links (hub/api_schemas/links.py). No answer may be
a 5xx, each must have a documented status, content type and body, a request the
document forbids must be refused, and what was deleted must stay gone.

The app is the real one (create_app) on a temporary SQLite file, called in process over
ASGI with its lifespan run, so its background tasks are live as in production. The
tenant has two enrolled agents (agents enrol through the agent protocol, not this API).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import overrides
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from schemathesis.config import SchemathesisConfig

from hub.app import create_app
from tests.hub.harness import PASSWORD, HubHarness, enroll

EXAMPLES = Path(__file__).parents[2] / "examples"
POLICIES = [(EXAMPLES / name).read_text() for name in ("ssh.bw", "web.bw")]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, use_after_free]
# Scenarios and steps per scenario: CI's profile keeps the run well under a minute.
SCENARIOS = max(10, hypothesis.settings.default.max_examples // 2)
STEPS = 8


@dataclasses.dataclass(frozen=True)
class Known:
    """What the caller knows before the run: its tenant, its token, its agents and a
    policy that compiles (so deployments are reached, not only refused)."""

    tenant_id: str
    token: str
    agent_ids: list[str]
    policy_id: str
    owner: dict[str, str]  # the signed-in owner's headers: session cookie and CSRF token


async def _tenant(harness: HubHarness) -> Known:
    """A tenant with two agents, a policy and some metrics."""
    async with harness:
        t = await harness.tenant("acme")
        web1 = await enroll(t, ["web"], "web1")
        web2 = await enroll(t, ["web", "db"], "web2")
        r = await t.token.post(t.base + "/policies", json={"name": "seeded", "source": POLICIES[0]})
        assert r.status_code == 201, await r.get_data(as_text=True)
        policy_id = (await r.get_json())["id"]
        await web1.report(healthy=True, mode="none", drift=[])
        now = int(time.time())
        r = await web1.post("/agent/v1/metrics", json={
            "points": [{"ts": now - i, "rule": "ssh", "packets": 10, "bytes": 600} for i in range(5)],
            "top_sources": [{"ts": now, "source": "203.0.113.9", "packets": 70}]})
        assert r.status_code == 200, await r.get_data(as_text=True)
        client = harness.client()
        r = await client.post("/auth/login", json={"email": t.user.email, "password": PASSWORD})
        assert r.status_code == 200, await r.get_data(as_text=True)
        r = await client.post("/auth/second-factor", json={"code": await harness.code(t.user.email)},
                              headers={"X-CSRF-Token": (await r.get_json())["csrf_token"]})
        assert r.status_code == 200, await r.get_data(as_text=True)
        cookie = r.headers["Set-Cookie"].split(";", 1)[0]
        owner = {"Cookie": cookie, "X-CSRF-Token": (await r.get_json())["csrf_token"]}
        return Known(str(t.id), t.token.token, [web1.id, web2.id], policy_id, owner)


class KnownRoots:
    """A scenario starts where the caller knows every id (its tenant's): an agent's or a
    deployment's comes from an answer, or the step would only meet a 404."""

    def __init__(self, control) -> None:
        self._control = control

    def __getattr__(self, name: str):
        return getattr(self._control, name)

    def allow_root_transition(self, label: str, bundles) -> bool:
        known = set(re.findall(r"\{(\w+)\}", label)) <= {"tenant_id"}
        return known and self._control.allow_root_transition(label, bundles)


def _machine(app, known: Known, headers: dict[str, str], failures: list[str], scenarios: list[int]):
    config = SchemathesisConfig.from_dict({
        "headers": headers,
        # The caller's own credentials, not made-up tokens beside them (401 is covered elsewhere).
        "generation": {"with-security-parameters": False},
        # Input the document forbids is refused: a 4xx it documents (413 included: a source
        # within its character bound can pass the body's byte bound), never a 2xx.
        "checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409",
                                                                    "413", "415", "422", "429"]}},
        "dictionaries": {"policies": {"values": POLICIES}, "policy_ids": {"values": [known.policy_id]},
                         "agent_ids": {"values": known.agent_ids}, "labels": {"values": ["web", "db"]}},
        "parameters": {
            "path.tenant_id": known.tenant_id,  # the caller knows its tenant
            "query.max_s": 0.2,  # a metrics stream would otherwise stay open for an hour
            # Half the policies saved are real ones, and half the deployments name a real
            # policy and real agents, so Plans, rollouts and rollbacks are reached.
            "body.source": {"dictionary": "policies", "probability": 0.5},
            "body.policy_id": {"dictionary": "policy_ids", "probability": 0.5},
            "body.agent_ids[*]": {"dictionary": "agent_ids", "probability": 0.7},
            "body.canary_agent_ids[*]": {"dictionary": "agent_ids", "probability": 0.7},
            "body.labels[*]": {"dictionary": "labels", "probability": 0.5},
        },
    })
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)

    class Machine(schema.as_state_machine()):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.control = KnownRoots(self.control)

        def setup(self) -> None:
            scenarios.append(1)

        def before_call(self, case) -> None:
            overrides.for_operation(schema.config, operation=case.operation).apply_to(case)
            super().before_call(case)

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None,
                                       recorder=self.recorder)
            except FailureGroup as exc:  # kept: a replay that does not repeat it cannot hide it
                failures.append(f"{case.operation.label}: {exc}\n{case.as_curl_command()}")
                raise

    return schema, Machine


# The token does what a program does; the owner also what only a person may (tokens,
# channels, invitations, roles, revoking agents, the export).
@pytest.mark.parametrize("caller", ["token", "owner"])
def test_the_api_followed_link_by_link_never_fails(tmp_path, caller):
    harness = HubHarness(tmp_path)
    known = asyncio.run(_tenant(harness))
    headers = {"Authorization": f"Bearer {known.token}"} if caller == "token" else known.owner
    failures: list[str] = []
    scenarios: list[int] = []
    schema, machine = _machine(create_app(harness.config), known, headers, failures, scenarios)
    assert schema.statistic.transitions.total > 100  # the links are in the document
    try:
        # The hub keeps what earlier scenarios made (and schemathesis follows a link only
        # sometimes), so Hypothesis may find a replay drawing differently and stop; as
        # schemathesis's own runner does, go on with the scenarios left.
        for _ in range(10):
            left = SCENARIOS - len(scenarios)
            if left <= 0 or failures:
                break
            with contextlib.suppress(FlakyStrategyDefinition):
                machine.run(settings=hypothesis.settings(
                    max_examples=left, stateful_step_count=STEPS, deadline=None, database=None,
                    derandomize=hypothesis.settings.default.derandomize,
                    suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate]))
    except Exception:
        if not failures:
            raise
    finally:
        asgi.shutdown_lifespans()
    assert not failures, "\n\n".join(failures)
    assert len(scenarios) >= SCENARIOS // 2
