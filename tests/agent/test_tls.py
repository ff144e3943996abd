"""Transport to the hub (issue 12, item 11), against a real hub serving TLS with a CA and
certificate made here: TLS 1.3 only, the agent pins the hub's CA by SHA-256 (a wrong pin
is refused before the credential is sent), and a plain-http hub is refused unless the
config allows it. The desired state that arrives over it carries a Plan signature the
pinned key verifies."""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import transport, trust
from agent.cli import main
from agent.config import AgentConfig
from agent.errors import ConfigError, HubUnavailable
from agent.hub_link import enroll, load_credential
from bulwark import plan_signature
from tests.agent.conftest import HubProcess


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("hub")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def sha256_of(cert) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca = make_ca("bulwark test CA")
    _, other = make_ca("another CA")
    key, leaf = make_leaf(ca_key, ca)
    (d / "hub.pem").write_bytes(pem(leaf))
    (d / "hub.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    (d / "ca.pem").write_bytes(pem(ca))
    (d / "both.pem").write_bytes(pem(other) + pem(ca))  # a bundle with two CAs: the pin picks one
    return {"dir": d, "ca": ca, "other": other}


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory, pki):
    d = pki["dir"]
    hub = HubProcess(tmp_path_factory.mktemp("hub"), tls=(d / "hub.pem", d / "hub.key", d / "ca.pem"))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def join_token(hub, pki) -> str:
    r = httpx.post(f"{hub['url']}/api/v1/tenants/{hub['tenant']}/join-tokens", json={"ttl_s": 600},
                   headers={"Authorization": f"Bearer {hub['api_token']}"}, verify=ca_context(pki))
    assert r.status_code == 201, r.text
    return r.json()["token"]


def ca_context(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["dir"] / "ca.pem"))


def config(tmp_path, pki, **kw) -> AgentConfig:
    return AgentConfig(state_root=str(tmp_path / "state"), ca_file=str(pki["dir"] / "both.pem"), **kw)


def test_hub_serves_tls_13_only(tls_hub, pki):
    assert tls_hub["url"].startswith("https://")
    good = ssl.create_default_context(cafile=str(pki["dir"] / "ca.pem"))
    with socket.create_connection(("127.0.0.1", tls_hub.port), timeout=10) as raw, \
            good.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.3"
    old = ssl.create_default_context(cafile=str(pki["dir"] / "ca.pem"))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_hub.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw, server_hostname="127.0.0.1")


def test_pinned_agent_enrols_and_gets_a_signed_state(tls_hub, pki, tmp_path):
    cfg = config(tmp_path, pki, hub_ca_sha256=":".join(sha256_of(pki["ca"]).upper()[i:i + 2] for i in range(0, 64, 2)))
    assert main(["enroll", "--state-root", cfg.state_root, "--hub", tls_hub["url"], "--token",
                 join_token(tls_hub, pki), "--hub-ca-sha256", sha256_of(pki["ca"])]) == 2  # no ca_file given
    doc = enroll(cfg, tls_hub["url"], join_token(tls_hub, pki))
    cred = load_credential(cfg)
    assert cred["hub_ca_sha256"] == sha256_of(pki["ca"])
    pin = trust.load_pin(cfg)
    assert pin["agent_id"] == doc["agent_id"]
    # what the hub link sends, over the pinned connection
    with httpx.Client(**transport.client_options(cfg, tls_hub["url"])) as client:
        r = client.post(f"{tls_hub['url']}/agent/v1/desired", json={"wait_s": 0},
                        headers={"Authorization": f"Bearer {cred['credential']}"})
    assert r.status_code == 200 and r.json()["mode"] == "none" and "signature" not in r.json()


def test_wrong_pin_is_refused(tls_hub, pki, tmp_path):
    # a CA in the bundle, but not the hub's: the handshake fails, nothing is sent
    cfg = config(tmp_path, pki, hub_ca_sha256=sha256_of(pki["other"]))
    with pytest.raises(HubUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        enroll(cfg, tls_hub["url"], join_token(tls_hub, pki))
    assert load_credential(cfg) is None
    # a pin no certificate in the bundle has: refused before connecting
    with pytest.raises(ConfigError, match="no CA certificate in .* has SHA-256 00"):
        enroll(config(tmp_path, pki, hub_ca_sha256="00" * 32), tls_hub["url"], "bwj_x")


def test_bad_pins_are_config_errors(tmp_path, pki):
    for bad in ("abc", "zz" * 32, "00" * 33):
        with pytest.raises(ConfigError, match="hub_ca_sha256"):
            config(tmp_path, pki).replace(hub_ca_sha256=bad)


def test_plain_http_hub_is_refused_unless_allowed(tmp_path, capsys):
    cfg = AgentConfig(state_root=str(tmp_path / "state"))
    with pytest.raises(ConfigError, match="refusing the plain-http hub http://127.0.0.1:9/.*allow_insecure_http"):
        enroll(cfg, "http://127.0.0.1:9", "bwj_x")
    assert main(["enroll", "--state-root", cfg.state_root, "--hub", "http://127.0.0.1:9", "--token", "bwj_x"]) == 2
    assert "allow_insecure_http" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="expected https"):
        transport.check_url(cfg, "ftp://hub")
    transport.check_url(cfg.replace(allow_insecure_http=True), "http://127.0.0.1:9")
    # allowed, it gets as far as the network (nothing listens on port 9)
    with pytest.raises(HubUnavailable):
        enroll(cfg.replace(allow_insecure_http=True, http_timeout_s=2), "http://127.0.0.1:9", "bwj_x")


def test_signature_verifies_with_the_pinned_key(tls_hub, pki, tmp_path):
    """The enrolment answer's key checks the hub's document signatures (hub side, end to end)."""
    cfg = config(tmp_path, pki)
    doc = enroll(cfg, tls_hub["url"], join_token(tls_hub, pki))
    api = httpx.Client(base_url=f"{tls_hub['url']}/api/v1/tenants/{tls_hub['tenant']}", verify=ca_context(pki),
                       headers={"Authorization": f"Bearer {tls_hub['api_token']}"}, timeout=10)
    with api:
        r = api.post("/policies", json={"name": "p", "source": 'policy "p"\ndefault pass\ndrop udp dport 9\n'})
        assert r.status_code == 201, r.text
        r = api.post("/deployments", json={"policy_id": r.json()["id"], "agent_ids": [doc["agent_id"]]})
        assert r.status_code == 201, r.text
    cred = load_credential(cfg)
    with httpx.Client(**transport.client_options(cfg, tls_hub["url"])) as client:
        state = client.post(f"{tls_hub['url']}/agent/v1/desired", json={"wait_s": 0},
                            headers={"Authorization": f"Bearer {cred['credential']}"}).json()
    pin = trust.load_pin(cfg)
    plan_signature.verify(pin["plan_public_key"], state["signature"], doc["agent_id"], state["deployment"]["id"],
                          state["deployment"]["digest"], state["mode"])
    with pytest.raises(plan_signature.SignatureInvalid):
        plan_signature.verify(pin["plan_public_key"], state["signature"], doc["agent_id"],
                              state["deployment"]["id"], state["deployment"]["digest"], "monitor")


def test_run_takes_the_pin_given_at_enrolment_and_refuses_plain_http(tmp_path):
    from agent.cli import _managed
    from agent.hub_link import save_credential

    pin = "ab" * 32
    cfg = AgentConfig(state_root=str(tmp_path)).replace(hub_ca_sha256="AB:" * 31 + "AB")
    save_credential(cfg, "https://hub.example:8443", "a", "bwa_x")
    plain = AgentConfig(state_root=str(tmp_path))
    assert _managed(plain)[0].hub_ca_sha256 == pin
    with pytest.raises(ConfigError, match="differs from the pin given at enrolment"):
        _managed(plain.replace(hub_ca_sha256="cd" * 32))
    save_credential(plain, "http://hub.example:8080", "a", "bwa_x")
    with pytest.raises(ConfigError, match="refusing the plain-http hub"):
        _managed(plain)
    assert _managed(plain.replace(allow_insecure_http=True))[0].hub_url == "http://hub.example:8080"
