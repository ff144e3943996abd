"""The hub's side of items 11 and 14 (issue 12): TLS settings that go together and load,
and the Plan signing key — made once (0600) even when workers race, signing what the
agent checks."""
from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from bulwark import plan_signature
from hub.cli import hypercorn_config
from hub.config import load_config
from hub.errors import ConfigError
from hub.services.plan_signing import PlanSigner, key_path, load_or_create


def test_tls_files_go_together_and_must_load(tmp_path):
    with pytest.raises(ConfigError, match="tls_certfile and tls_keyfile go together"):
        load_config(env={}, data_dir=str(tmp_path), tls_certfile="/x.pem")
    (tmp_path / "bad.pem").write_text("not a certificate")
    config = load_config(env={}, data_dir=str(tmp_path), tls_certfile=str(tmp_path / "bad.pem"),
                         tls_keyfile=str(tmp_path / "bad.pem"))
    with pytest.raises(ConfigError, match="tls_certfile/tls_keyfile"):
        hypercorn_config(config)
    assert hypercorn_config(load_config(env={}, data_dir=str(tmp_path))).create_ssl_context() is None


def _sign_in_child(data_dir: str, out) -> None:
    signer = PlanSigner(load_config(env={}, data_dir=data_dir))
    out.put(signer.public_key)


def test_signing_key_made_once_even_when_workers_race(tmp_path):
    data_dir = str(tmp_path / "data")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    children = [ctx.Process(target=_sign_in_child, args=(data_dir, out)) for _ in range(6)]
    for child in children:
        child.start()
    keys = {out.get(timeout=60) for _ in children}
    for child in children:
        child.join(60)
    assert len(keys) == 1
    path = key_path(load_config(env={}, data_dir=data_dir))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["plan_signing_key"]  # no temp file left
    assert PlanSigner(load_config(env={}, data_dir=data_dir)).public_key in keys  # read again, not remade


def test_signature_covers_agent_deployment_digest_and_mode(tmp_path):
    signer = PlanSigner(load_config(env={}, data_dir=str(tmp_path)))
    fields = ("agent-1", "dep-1", "ab" * 32, "enforce")
    signature = signer.sign(*fields)
    plan_signature.verify(signer.public_key, signature, *fields)
    for i, other in enumerate(("agent-2", "dep-2", "cd" * 32, "monitor")):
        changed = list(fields)
        changed[i] = other
        with pytest.raises(plan_signature.SignatureInvalid):
            plan_signature.verify(signer.public_key, signature, *changed)
    with pytest.raises(plan_signature.SignatureInvalid):
        plan_signature.message("a\nb", "d", "x", "enforce")


def test_a_key_file_that_is_not_a_key_is_a_config_error(tmp_path):
    (tmp_path / "k").write_text("garbage")
    with pytest.raises(ConfigError, match="plan signing key"):
        load_or_create(load_config(env={}, data_dir=str(tmp_path), plan_signing_key_file=str(tmp_path / "k")))
