"""The `bulwark` console script: one entry point, a subcommand per part.

Each part owns its own command line (`rules_dsl.cli`, `agent.cli`, `hub.cli`) and is
imported only when its subcommand is used, so `bulwark rules` never loads the hub.
"""
from __future__ import annotations

import importlib
import sys

PARTS = {
    "rules": ("rules_dsl.cli", "write, check, test and compile policies"),
    "agent": ("agent.cli", "protect this server"),
    "hub": ("hub.cli", "run the central hub"),
}


def usage() -> str:
    lines = ["usage: bulwark {" + ",".join(PARTS) + "} ...", "", "commands:"]
    lines += [f"  {name:<8}{about}" for name, (_, about) in PARTS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return 0 if argv else 2
    part = PARTS.get(argv[0])
    if part is None:
        print(f"bulwark: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(part[0])
    except ModuleNotFoundError as exc:
        if exc.name != part[0]:
            raise
        print(f"bulwark: '{argv[0]}' is not built yet", file=sys.stderr)
        return 2
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
