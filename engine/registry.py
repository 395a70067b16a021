"""The method registry: every method is a registered, citable unit (DESIGN.md).

A method is one function plus one :func:`register` call that records its name, family, paper, a one-sentence
summary and its parameters (defaults and ranges from the paper). The app builds dropdowns and parameter
controls from here, the CLI validates its flags here, and comparison views run any two methods of a family.

Examples
--------
>>> from engine.registry import Param, Paper, register
>>> @register("demo-identity", family="layers", paper=Paper("A paper", 2024, "arXiv:0000.00000"),
...           summary="Returns its input.", params=[Param("k", 2, low=1, high=8)])
... def identity(x, *, k=2, seed=0):
...     return x
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAMILIES",
    "Paper",
    "Param",
    "Method",
    "register",
    "get",
    "by_family",
    "all_methods",
    "InputError",
]

FAMILIES = ("layers", "tokens", "flow", "superposition", "graphs", "splats")


class InputError(ValueError):
    """Something the user must fix (bad value, wrong shape, too large). Its message is shown as is."""


@dataclass(frozen=True)
class Paper:
    title: str
    year: int
    ref: str  # arXiv id ("arXiv:2406.15786") or venue ("KDD 2020")
    url: str = ""

    def cite(self) -> str:
        return f"{self.title} ({self.year}, {self.ref})"


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: tuple[Any, ...] | None = None  # allowed values for categorical parameters
    help: str = ""

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        return "str"

    def check(self, value: Any) -> Any:
        """Coerce ``value`` to this parameter's type and check its range; raise :class:`InputError`."""
        kind = self.kind
        try:
            if kind == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
            elif kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif kind == "float":
                value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"parameter {self.name!r} must be {kind}, got {value!r}") from None
        if kind == "float" and value != value:  # NaN
            raise InputError(f"parameter {self.name!r} is NaN")
        if self.choices is not None and value not in self.choices:
            raise InputError(f"parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise InputError(f"parameter {self.name!r} must be >= {self.low}, got {value}")
        if self.high is not None and value > self.high:
            raise InputError(f"parameter {self.name!r} must be <= {self.high}, got {value}")
        return value


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    paper: Paper | None
    summary: str
    params: tuple[Param, ...]
    fn: Callable[..., Any] = field(compare=False)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fill defaults, reject unknown names, coerce and range-check every value."""
        values = dict(values or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"method {self.name!r} has no parameter(s) {unknown}; it takes {sorted(known)}")
        return {name: p.check(values.get(name, p.default)) for name, p in known.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


_REGISTRY: dict[str, Method] = {}


def register(
    name: str,
    *,
    family: str,
    paper: Paper | None,
    summary: str,
    params: Sequence[Param] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers ``fn`` as method ``name``; returns ``fn`` unchanged."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = Method(name, family, paper, summary, tuple(params), fn)
        return fn

    return wrap


def _load_all() -> None:
    # Registration happens on import of each family module; import them lazily so a caller asking the
    # registry sees every method without importing heavy dependencies at module import time. A family that
    # fails to import is logged and skipped, so one broken family cannot hide the others' methods.
    import importlib
    import logging
    import pkgutil

    import engine

    for info in pkgutil.iter_modules(engine.__path__):
        if not info.ispkg or info.name in _FAILED:
            continue
        try:
            mod = importlib.import_module(f"engine.{info.name}")
            for sub in getattr(mod, "METHOD_MODULES", ()):
                importlib.import_module(f"engine.{info.name}.{sub}")
        except Exception:
            _FAILED.add(info.name)
            logging.getLogger("redex.registry").exception(
                "engine.%s failed to import; its methods are missing", info.name
            )


_FAILED: set[str] = set()


def get(name: str) -> Method:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; known: {sorted(_REGISTRY)}") from None


def by_family(family: str) -> list[Method]:
    _load_all()
    return [m for m in _REGISTRY.values() if m.family == family]


def all_methods() -> list[Method]:
    _load_all()
    return list(_REGISTRY.values())
