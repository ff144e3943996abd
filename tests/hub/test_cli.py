from __future__ import annotations

import io
import sqlite3

import pytest

from hub.cli import main


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BULWARK_HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BULWARK_HUB_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("BULWARK_HUB_ARGON2_TIME_COST", "1")
    return tmp_path


def _admin(monkeypatch, email):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    return main(["create-admin", email, "--password-stdin"])


def test_migrate_then_create_admin(env, monkeypatch, capsys):
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0
    assert _admin(monkeypatch, "Root@Example.com") == 0
    db = sqlite3.connect(env / "hub.sqlite3")
    assert db.execute("select email, is_platform_admin from user").fetchall() == [("root@example.com", 1)]
    assert _admin(monkeypatch, "root@example.com") == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_create_admin_says_the_first_sign_in_sets_up_2fa_or_turns_it_on(env, monkeypatch, capsys):
    import pyotp

    assert _admin(monkeypatch, "plain@example.com") == 0
    assert "leads to the 2FA set-up" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["create-admin", "ops@example.com", "--password-stdin", "--totp"]) == 0
    out = capsys.readouterr().out.splitlines()
    uri = next(line for line in out if line.startswith("otpauth://"))
    assert pyotp.parse_uri(uri).secret and len(out[-1].split()) == 10  # the recovery codes
    db = sqlite3.connect(env / "hub.sqlite3")
    (sealed,) = db.execute("select totp_secret from user where email = 'ops@example.com'").fetchone()
    assert sealed.startswith("bwenc1:") and pyotp.parse_uri(uri).secret not in sealed


def test_audit_verify_finds_edits_and_removals(env, monkeypatch, capsys):
    for i in range(4):
        assert _admin(monkeypatch, f"a{i}@example.com") == 0
    assert main(["audit", "verify"]) == 0
    assert "4 entries checked, 0 problem(s)" in capsys.readouterr().out

    db = sqlite3.connect(env / "hub.sqlite3")
    db.execute("update audit_entry set target = 'mallory@example.com' where seq = 2")
    db.commit()
    assert main(["audit", "verify"]) == 1
    assert "entry 2: edited" in capsys.readouterr().out

    db.execute("update audit_entry set target = 'a1@example.com' where seq = 2")
    db.execute("delete from audit_entry where seq = 3")
    db.commit()
    assert main(["audit", "verify"]) == 1
    assert "entry 3: missing" in capsys.readouterr().out


def test_bad_config_is_reported_not_raised(env, monkeypatch, capsys):
    monkeypatch.setenv("BULWARK_HUB_NO_SUCH", "1")
    assert main(["migrate"]) == 2
    assert "BULWARK_HUB_NO_SUCH" in capsys.readouterr().err


def test_create_admin_without_a_terminal_points_at_password_stdin(env):
    """A new session has no controlling terminal, as under systemd or in a pipeline."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))",
                             "create-admin", "root@example.com"], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60, start_new_session=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bulwark hub: no terminal to ask for the password on: pipe it in with --password-stdin"]


def test_reset_link_is_printed_for_a_user_and_refused_for_nobody(env, monkeypatch, capsys):
    assert _admin(monkeypatch, "root@example.com") == 0
    capsys.readouterr()
    monkeypatch.setenv("BULWARK_HUB_PUBLIC_URL", "https://hub.example")
    assert main(["reset-link", "Root@example.com"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://hub.example/reset/") and len(link) > 60
    db = sqlite3.connect(env / "hub.sqlite3")
    assert db.execute("select count(*) from password_reset").fetchone() == (1,)
    assert main(["reset-link", "nobody@example.com"]) == 2
    assert "user not found" in capsys.readouterr().err


@pytest.mark.kernel
def test_publish_templates_skips_what_is_published_and_fails_on_a_refusal(env, capsys, tmp_path):
    from tests.templates.test_templates import SMALL

    good, bad = tmp_path / "small.toml", tmp_path / "broken.toml"
    good.write_text(SMALL)
    bad.write_text(SMALL.replace("version = 3", "version = 4").replace(
        "limit {{rate}}/second per src", "limit {{rate}}/second per src limit 500/second global"))
    assert main(["publish-templates", str(good)]) == 0
    assert "small.toml: published version 3 (15 vectors)" in capsys.readouterr().out
    assert main(["publish-templates", str(good), str(bad)]) == 1
    out = capsys.readouterr()
    assert "small is at version 3" in out.out
    assert "broken.toml: refused: broken.toml:14: small v4 with rate=1000: reference:" in out.err
    db = sqlite3.connect(env / "hub.sqlite3")
    assert db.execute("select slug, latest_version from market_template").fetchall() == [("small", 3)]
    assert db.execute("select action, actor from audit_entry where action like 'template.%'").fetchall() == \
        [("template.publish", "cli")]


def test_the_serving_loop_is_uvloop():
    """`bulwark hub serve` and the benchmarks' hub run on hub.event_loop.run: uvloop, a
    declared dependency (a quarter of a busy hub's CPU was asyncio's own loop)."""
    import asyncio

    from hub import event_loop

    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(kind()).startswith("uvloop")
