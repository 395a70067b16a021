"""One module per `redex` subcommand. Each module defines ``NAME`` (str), ``HELP`` (str) and
``add_arguments(parser)`` and ``run(args)``, which returns an engine :class:`~engine.results.Result` (printed as
``result.to_dict()``, the same object the tab's downloads are written from), and optionally
``render(result: dict) -> str`` for the human-readable output. :mod:`app.cli` discovers them.

Flags that are a method's parameters take their choices and defaults from the registry
(:func:`method_flag`, :func:`param_flag`), so a newly registered method appears in ``--method`` with no edit here.
"""

from __future__ import annotations

import argparse
import sys

from engine.registry import Param, names

__all__ = ["method_flag", "param_flag", "tqdm_progress"]


def method_flag(
    p: argparse.ArgumentParser, family: str, *, role: str | None = None, default: str | None = None,
    flag: str = "--method", nargs: str | None = None, help: str = "",
) -> None:  # fmt: skip
    """``--method`` with the family's registered names as choices (resolved when the parser is built)."""
    choices = names(family, role=role)
    default = default if default is not None else (choices[0] if choices and nargs is None else None)
    p.add_argument(
        flag, choices=choices, default=default, nargs=nargs, help=help or f"registered {family} method"
    )


def param_flag(p: argparse.ArgumentParser, param: Param, *, flag: str | None = None, help: str = "") -> None:
    """A flag for one registry parameter; its value is checked later by ``Method.validate``, not by argparse."""
    flag = flag or "--" + param.name.replace("_", "-")
    kind = {"int": int, "float": float}.get(param.kind, str)
    extra = {"choices": list(param.choices)} if param.kind == "choice" else {}
    if param.kind == "bool":
        p.add_argument(flag, action="store_true", default=param.default, help=help or param.help)
        return
    p.add_argument(flag, type=kind, default=param.default, help=help or param.help or None, **extra)


def tqdm_progress():
    """A ``progress(frac, desc)`` callback that draws a tqdm bar on stderr when it is a terminal."""
    from tqdm import tqdm

    bar = tqdm(total=100, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def update(frac: float, desc: str) -> None:
        bar.set_description(desc)
        bar.n = int(frac * 100)
        bar.refresh()

    return update
