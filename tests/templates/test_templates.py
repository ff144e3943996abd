"""Templates: parsing (located errors), rendering (typed, bounded, injection-proof)."""
from __future__ import annotations

from pathlib import Path

import pytest

from rules_dsl import parse
from rules_dsl.errors import ParameterError, TemplateError
from rules_dsl.templates import MAX_VALUE_CHARS, parameter_sets, parse_template, render

SHIPPED = Path(__file__).resolve().parents[2] / "rules_dsl" / "shipped"

SMALL = '''slug = "small"
version = 3
title = "Small"
summary = "a game port with a rate"
why = "because"
policy = \'\'\'
policy "small"
default drop
set admins { {{admins}} }
set bans { list "{{bans}}" }
drop from @bans
pass tcp from @admins dport 22
pass udp dport {{ports}} limit {{rate}}/second per src
expect pass udp 192.0.2.1:4000 -> 192.0.2.2:{{ports.lo}} x {{rate}}
expect drop udp 192.0.2.1:4000 -> 192.0.2.2:{{ports.hi}}
expect pass tcp {{admins.host}}:4000 -> 192.0.2.2:22 flags syn
\'\'\'

[params.ports]
kind = "port_range"
default = "27015-27030"
min = 1024
description = "game ports"

[params.rate]
kind = "rate"
default = 100
min = 10
max = 1000
description = "packets per second per source"

[params.admins]
kind = "prefixes"
default = ["198.51.100.0/24"]
description = "admins"

[params.bans]
kind = "list_name"
default = "ban"
description = "a list"
'''


@pytest.fixture
def small():
    return parse_template(SMALL, "small.toml")


def test_render_defaults_and_values(small):
    r = render(small)
    assert "dport 27015-27030 limit 100/second" in r.text
    assert "expect pass tcp 198.51.100.1:4000" in r.text
    r = render(small, {"ports": "30000", "rate": "20", "admins": "192.0.2.0/24, 2001:db8::/32",
                       "bans": "crowdsec.v4"})
    assert "dport 30000 limit 20/second" in r.text and "{ 192.0.2.0/24, 2001:db8::/32 }" in r.text
    assert r.values["ports"] == (30000, 30000)
    assert parse(r.text).name  # the result is policy text


def test_a_single_host_prefix_is_written_bare(small):
    assert "{ 198.51.100.7 }" in render(small, {"admins": "198.51.100.7/32"}).text


@pytest.mark.parametrize(("values", "param", "why"), [
    ({"rate": 5}, "rate", "from 10 to 1000"),
    ({"rate": 1001}, "rate", "from 10 to 1000"),
    ({"rate": True}, "rate", "whole number"),
    ({"rate": 1.5}, "rate", "whole number"),
    ({"rate": "1e3"}, "rate", "whole number"),
    ({"rate": "٣٣"}, "rate", "whole number"),   # Arabic-Indic digits are digits to str.isdigit
    ({"rate": "9" * 40}, "rate", "whole number"),
    ({"ports": "2000-1500"}, "ports", "backwards"),
    ({"ports": "80"}, "ports", "from 1024"),
    ({"ports": "1024-70000"}, "ports", "to 65535"),
    ({"admins": "198.51.100.1/24"}, "admins", "did you mean 198.51.100.0/24"),
    ({"admins": "any"}, "admins", "not an address"),
    ({"admins": ", ".join(f"10.0.{i}.0/24" for i in range(65))}, "admins", "from 1 to 64"),
    ({"admins": [1, 2]}, "admins", "list of addresses"),
    ({"bans": 'x" }\npass from any\n#'}, "bans", "list name"),
    ({"bans": "a b"}, "bans", "list name"),
    ({"bans": "x" * 65}, "bans", "list name"),
    ({"bans": "x" * (MAX_VALUE_CHARS + 1)}, "bans", "at most"),
    ({"ports": "27015 }\ndefault pass\nset x {"}, "ports", "whole number"),
    ({"nope": 1}, "nope", "not a parameter"),
])
def test_a_bad_parameter_is_named(small, values, param, why):
    with pytest.raises(ParameterError) as err:
        render(small, values)
    assert [p for p, _ in err.value.problems] == [param]
    assert why in err.value.problems[0][1]


def test_every_bad_parameter_is_named_at_once(small):
    with pytest.raises(ParameterError) as err:
        render(small, {"rate": 0, "ports": "x", "admins": "no"})
    assert {p for p, _ in err.value.problems} == {"rate", "ports", "admins"}


def test_injection_through_text_never_reaches_the_policy(small):
    """Whatever a caller sends, the rendered text is the template's with canonical values."""
    for hostile in ['ban"', "ban\n", "ban}", "{{rate}}", "ban\u202e", "ban\x00"]:
        with pytest.raises(ParameterError):
            render(small, {"bans": hostile})


def test_parameter_sets_are_defaults_and_bounds(small):
    labels = [label for label, _ in parameter_sets(small)]
    assert labels == ["defaults", "ports=1024", "ports=1024-65535", "rate=10", "rate=1000"]


@pytest.mark.parametrize(("edit", "line", "message"), [
    (lambda s: s.replace("{{rate}}/second", "{{rat}}/second"), 13, "{{rat}} names no parameter"),
    (lambda s: s.replace("{{ports.lo}}", "{{ports.host}}"), 14, "a port_range has no .host"),
    (lambda s: s.replace("{{ports.hi}}", "{{ports.hi}"), 15, "a placeholder is"),
    (lambda s: s.replace('kind = "rate"', 'kind = "float"'), 25, "kind must be one of"),
    (lambda s: s.replace("default = 100", "default = 5"), 25, "default or boundary value must be from 10"),
    (lambda s: s.replace("min = 10\n", "min = 10\nmin = 11\n"), 29, "not TOML"),
    (lambda s: s.replace("version = 3", "version = 0"), 2, "version must be"),
    (lambda s: s.replace('slug = "small"', 'slug = "Small One"'), 1, "slug must be"),
    (lambda s: s + "\n[params.unused]\nkind = \"port\"\ndefault = 1\ndescription = \"x\"\n", 42,
     "parameter unused is never used"),
    (lambda s: s.replace('why = "because"', 'why = "because"\nowner = "me"'), 6, "unknown key 'owner'"),
])
def test_a_broken_template_is_located(edit, line, message):
    with pytest.raises(TemplateError) as err:
        parse_template(edit(SMALL), "small.toml")
    found = [(d.line, d.message) for d in err.value.diagnostics]
    assert any(ln == line and message in m for ln, m in found), found
    assert err.value.diagnostics[0].render().startswith("small.toml:")


def test_an_oversized_template_is_refused():
    with pytest.raises(TemplateError, match="at most"):
        parse_template(SMALL + "#" * 200_000)


SHIPPED_FILES = sorted(SHIPPED.glob("*.toml"))


def test_at_least_twelve_templates_are_shipped_with_a_page_of_why():
    assert len(SHIPPED_FILES) >= 12
    for path in SHIPPED_FILES:
        t = parse_template(path.read_text(), path.name)
        assert t.slug == path.stem and len(t.why) > 300, path.name
