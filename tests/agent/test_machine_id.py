"""The machine-id sent at enrolment: systemd's 32 hex digits, or nothing (never a crash)."""
from __future__ import annotations

import pytest

from agent.hub_link import agent_machine_id, machine_id


@pytest.mark.parametrize("content, expected", [
    ("0123456789abcdef0123456789abcdef\n", "0123456789abcdef0123456789abcdef"),
    ("", ""), ("uninitialized\n", ""), ("0123456789ABCDEF0123456789ABCDEF\n", ""),
    ("0" * 5000, ""), ("\x00\xff" * 16, ""),
])
def test_machine_id(tmp_path, content, expected):
    path = tmp_path / "machine-id"
    path.write_text(content)
    assert machine_id(str(path)) == expected


def test_missing_or_unreadable(tmp_path):
    assert machine_id(str(tmp_path / "absent")) == ""
    assert machine_id(str(tmp_path)) == ""  # a directory


def test_not_text(tmp_path):
    (tmp_path / "machine-id").write_bytes(b"\xff\xfe" * 16)
    assert machine_id(str(tmp_path / "machine-id")) == ""


def test_the_hub_sees_an_app_specific_id_per_agent_name(tmp_path):
    path = tmp_path / "machine-id"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    a, b = agent_machine_id("a", str(path)), agent_machine_id("b", str(path))
    assert len(a) == 32 and a != b and "0123456789abcdef" not in a
    assert a == agent_machine_id("a", str(path))  # a clone (same id, same name) collides
    assert agent_machine_id("a", str(tmp_path / "absent")) == ""
