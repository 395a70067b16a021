"""`redex`: the command line. Same engine and visualizers as the app, JSON out with ``--json``.

Subcommands are discovered from :mod:`app.commands`; each prints one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys

import app.commands
from engine.registry import InputError
from engine.results import Result, to_jsonable

__all__ = ["build_parser", "main"]


def _commands():
    mods = [
        importlib.import_module(f"app.commands.{i.name}") for i in pkgutil.iter_modules(app.commands.__path__)
    ]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redex", description="Redundancy Explorer: compute and compare redundancy from the command line."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(_module=mod)
    methods = sub.add_parser("methods", help="list every registered method with its paper")
    methods.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    methods.set_defaults(_module=None)
    return parser


def _list_methods() -> dict:
    from engine.registry import all_methods

    return {"methods": [m.spec() for m in sorted(all_methods(), key=lambda m: (m.family, m.name))]}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args._module is None:
            out = _list_methods()
            render = None
        else:
            out = args._module.run(args)
            render = getattr(args._module, "render", None)
    except (InputError, ValueError, FileNotFoundError) as e:
        print(f"redex {args.command}: error: {e}", file=sys.stderr)
        return 2
    if isinstance(out, Result):
        out = out.to_dict()  # the result's own serialiser: the same object the tab's downloads hold
    if getattr(args, "json", False) or render is None:
        print(json.dumps(to_jsonable(out), indent=None if getattr(args, "json", False) else 2))
    else:
        print(render(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
