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

A :class:`Method` carries every fact a caller needs: its family and ``role`` inside the family (``"drop"`` or
``"scan"`` for layers, ``"prune"`` for splats, ...), where it acts (``acts_at``: a layer of the vision encoder,
before the LM, ...), which inputs it needs (``needs``: ``("importance",)`` for splat scores computed over many
views, ...) and its random control (``control``: the registered method that makes the same cut at random).
:meth:`Method.validate` is the only range check of a method's parameters; the app builds its controls from the
same :class:`Param` objects (``app/controls.py``), so a slider's bounds and the check cannot drift apart.
Settings that belong to a comparison rather than to one method (a sweep's grid, seeds) are declared the same
way, as a :class:`Settings` table next to the engine function that takes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAMILIES",
    "Paper",
    "Param",
    "Settings",
    "Method",
    "register",
    "unregister",
    "get",
    "by_family",
    "names",
    "all_methods",
    "validate_params",
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
    authors: tuple[str, ...] = ()  # "Last, First" each, in the paper's order; "others" ends a shortened list

    def cite(self) -> str:
        return f"{self.title} ({self.year}, {self.ref})"

    @property
    def key(self) -> str:
        """BibTeX key: first author's last name, year, first word of the title (``he2024what``)."""
        first = (self.authors[0].split(",")[0] if self.authors else self.title.split()[0]).lower()
        word = next((w for w in self.title.lower().split() if w.isalpha() and len(w) > 3), "paper")
        return "".join(c for c in f"{first}{self.year}{word}" if c.isalnum())

    def bibtex(self) -> str:
        """One BibTeX entry: ``@article`` with the arXiv eprint for arXiv papers, ``@inproceedings`` else."""
        fields = {"title": "{" + self.title + "}", "year": str(self.year)}
        if self.authors:
            fields["author"] = " and ".join(self.authors)
        if self.ref.startswith("arXiv:"):
            kind, eprint = "article", self.ref.removeprefix("arXiv:")
            fields.update(journal=f"arXiv preprint arXiv:{eprint}", eprint=eprint, archivePrefix="arXiv")
        else:
            kind = "inproceedings"
            fields["booktitle"] = self.ref
        if self.url:
            fields["url"] = self.url
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items())
        return f"@{kind}{{{self.key},\n{body}\n}}\n"


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: tuple[Any, ...] | None = None  # allowed values for categorical parameters
    help: str = ""  # one line shown under the control and in `redex methods`
    label: str = ""  # what the control is called in the app (default: the name)
    step: float | None = None  # slider step for numbers (default: 1 for int, a 100th of the range for float)

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

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def spec(self) -> dict[str, Any]:
        """Plain-JSON description (``redex methods --json``)."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        for k in ("low", "high", "help"):
            if getattr(self, k) not in (None, ""):
                d[k] = getattr(self, k)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d


def validate_params(
    owner: str,
    params: Sequence[Param],
    values: dict[str, Any] | None = None,
    *,
    only: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Fill defaults, reject unknown names, coerce and range-check every value (the one range check).

    ``only`` restricts the result (and the check) to those parameter names.
    """
    values = dict(values or {})
    known = {p.name: p for p in params}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"{owner} has no parameter(s) {unknown}; it takes {sorted(known)}")
    keep = known if only is None else {n: known[n] for n in only}
    return {name: p.check(values.get(name, p.default)) for name, p in keep.items()}


@dataclass(frozen=True)
class Settings:
    """A named table of :class:`Param` for what is not one method's parameter (a sweep's grid, seeds, sizes).

    >>> CURVE = Settings("drop curve", (Param("max_n", 8, low=1, high=64),))
    >>> CURVE.validate({"max_n": "4"})
    {'max_n': 4}
    """

    owner: str
    params: tuple[Param, ...]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: dict[str, Any] | None = None, *, only: Sequence[str] | None = None) -> dict:
        return validate_params(self.owner, self.params, values, only=only)


@dataclass(frozen=True)
class Method:
    name: str
    family: str
    paper: Paper | None
    summary: str
    params: tuple[Param, ...]
    fn: Callable[..., Any] = field(compare=False)
    role: str = "method"  # what the method does inside its family ("scan", "drop", "prune", "measure", ...)
    acts_at: str = ""  # where it acts ("vit", "pre-lm", "lm", "attn", ...); "" when the family has one place
    needs: tuple[str, ...] = ()  # inputs beyond the family's own ("importance", "scan", "attention", ...)
    control: str | None = None  # the registered random control that makes the same cut at random
    facts: tuple[tuple[str, Any], ...] = ()  # further family-specific facts, read with fact()
    deviations: str = ""  # where this implementation departs from the paper's official code, and why

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise InputError(f"method {self.name!r} has no parameter {name!r}")

    def fact(self, key: str, default: Any = None) -> Any:
        return dict(self.facts).get(key, default)

    def validate(self, values: dict[str, Any] | None = None, *, only: Sequence[str] | None = None) -> dict:
        """Fill defaults, reject unknown names, coerce and range-check every value."""
        return validate_params(f"method {self.name!r}", self.params, values, only=only)

    def spec(self) -> dict[str, Any]:
        """Plain-JSON description of every fact (``redex methods --json``)."""
        return {
            "name": self.name,
            "family": self.family,
            "role": self.role,
            "paper": self.paper.cite() if self.paper else None,
            "url": self.paper.url if self.paper else None,
            "summary": self.summary,
            "acts_at": self.acts_at or None,
            "needs": list(self.needs),
            "control": self.control,
            "deviations": self.deviations or None,
            "params": self.defaults(),
            "parameters": [p.spec() for p in self.params],
            **{k: v for k, v in self.facts},
        }

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
    role: str = "method",
    acts_at: str = "",
    needs: Sequence[str] = (),
    control: str | None = None,
    facts: dict[str, Any] | None = None,
    deviations: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers ``fn`` as method ``name``; returns ``fn`` unchanged.

    Registration order is display order: the app lists a family's methods in the order they register.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    names_seen = [p.name for p in params]
    if len(set(names_seen)) != len(names_seen):
        raise ValueError(f"method {name!r} declares a parameter twice: {names_seen}")

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = Method(
            name, family, paper, summary, tuple(params), fn, role=role, acts_at=acts_at,
            needs=tuple(needs), control=control, facts=tuple((facts or {}).items()), deviations=deviations,
        )  # fmt: skip
        return fn

    return wrap


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _REGISTRY.pop(name, None)


def _load_family(package: str) -> None:
    # Registration happens on import of each family package's METHOD_MODULES; import them lazily, so asking
    # for one family imports only that family. A family that fails to import is logged and skipped, so one
    # broken family cannot hide the others' methods.
    import importlib
    import logging

    if package in _LOADED or package in _FAILED:
        return
    try:
        mod = importlib.import_module(f"engine.{package}")
        for sub in getattr(mod, "METHOD_MODULES", ()):
            importlib.import_module(f"engine.{package}.{sub}")
        _LOADED.add(package)
    except Exception:
        _FAILED.add(package)
        logging.getLogger("redex.registry").exception(
            "engine.%s failed to import; its methods are missing", package
        )


def _load_all() -> None:
    import pkgutil

    import engine

    for info in pkgutil.iter_modules(engine.__path__):
        if info.ispkg:
            _load_family(info.name)


_LOADED: set[str] = set()
_FAILED: set[str] = set()


def get(name: str, *, family: str | None = None) -> Method:
    """The method called ``name``; with ``family``, only that family is imported and searched."""
    if family is not None:
        methods = {m.name: m for m in by_family(family)}
        if name not in methods:
            raise InputError(f"unknown {family} method {name!r}; choose one of {list(methods)}")
        return methods[name]
    if name not in _REGISTRY:
        _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}; known: {sorted(_REGISTRY)}") from None


def by_family(family: str, *, role: str | None = None) -> list[Method]:
    """The family's methods in registration order (only ``role`` ones when given); imports that family only."""
    if family not in FAMILIES:
        raise InputError(f"unknown family {family!r}; expected one of {list(FAMILIES)}")
    _load_family(family)
    return [m for m in _REGISTRY.values() if m.family == family and (role is None or m.role == role)]


def names(family: str, *, role: str | None = None) -> list[str]:
    """Method names of a family (and role) in registration order: the choices of every dropdown and flag."""
    return [m.name for m in by_family(family, role=role)]


def all_methods() -> list[Method]:
    _load_all()
    return list(_REGISTRY.values())
