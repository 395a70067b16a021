"""Gradio controls built from the registry: one :class:`~engine.registry.Param` -> one slider, checkbox,
dropdown or number box, and one family -> one method dropdown.

The bounds a user can reach in the UI are the bounds :meth:`Method.validate` enforces, because both read the
same ``Param``; a handler turns what the controls send back into checked values with :func:`values`, never
with its own range test. Call the builders inside a Blocks layout.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any

import gradio as gr

from engine.registry import Method, Param, Settings, by_family

__all__ = ["control", "controls", "method_dropdown", "method_choices", "values", "method_info"]


def _step(p: Param) -> float:
    if p.step is not None:
        return p.step
    if p.kind == "int":
        return 1
    span = (p.high - p.low) if p.low is not None and p.high is not None else 1.0
    return float(f"{span / 100:.1g}") or 0.01


def control(
    p: Param, *, value: Any = None, label: str | None = None, **kwargs: Any
) -> gr.components.Component:
    """The control for one parameter: bounded numbers -> Slider, open-ended -> Number, bool -> Checkbox,
    choices -> Dropdown, text -> Textbox. ``value`` overrides the parameter's default."""
    value = p.default if value is None else p.check(value)
    label = label or p.title
    info = kwargs.pop("info", p.help or None)
    if p.kind == "bool":
        return gr.Checkbox(value=value, label=label, info=info, **kwargs)
    if p.kind == "choice":
        return gr.Dropdown(list(p.choices), value=value, label=label, info=info, **kwargs)
    if p.kind in ("int", "float"):
        if p.low is not None and p.high is not None:
            return gr.Slider(p.low, p.high, value=value, step=_step(p), label=label, info=info, **kwargs)
        extra = {"precision": 0} if p.kind == "int" else {}
        return gr.Number(
            value=value, minimum=p.low, maximum=p.high, label=label, info=info, **extra, **kwargs
        )
    return gr.Textbox(value=value, label=label, info=info, **kwargs)


def controls(
    source: Method | Settings | Sequence[Param],
    *,
    only: Sequence[str] | None = None,
    values: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, gr.components.Component]:
    """Controls for every parameter of a method or a :class:`Settings` table (or those in ``only``), in
    declaration order, keyed by parameter name."""
    params = source.params if isinstance(source, Method | Settings) else tuple(source)
    by_name = {p.name: p for p in params}
    order = list(only) if only is not None else list(by_name)
    values, labels = values or {}, labels or {}
    return {n: control(by_name[n], value=values.get(n), label=labels.get(n)) for n in order}


def method_choices(family: str, *, role: str | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """Registered method names of a family (and role), in registration order."""
    return [m.name for m in by_family(family, role=role) if m.name not in set(exclude)]


def method_info(family: str, *, role: str | None = None) -> str:
    """Markdown lines 'name: summary (paper)' for a family, for a 'methods' accordion under the dropdown."""
    lines = []
    for m in by_family(family, role=role):
        cite = f" *{m.paper.cite()}*" if m.paper else " (baseline)"
        lines.append(f"- **{m.name}**: {m.summary}{cite}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


_DEVIATION = re.compile(r"deviat|official code|official implementation|differs? from|unlike the (paper|official)",
                        re.IGNORECASE)  # fmt: skip


def _docstring_deviations(m) -> str:
    """The paragraphs of the method function's docstring that state where it departs from the official code."""
    doc = inspect.getdoc(m.fn) or ""
    found = [" ".join(p.split()) for p in doc.split("\n\n") if _DEVIATION.search(p) and "---" not in p]
    text = " ".join(found)
    return text if len(text) <= 700 else text[:697].rsplit(" ", 1)[0] + "..."


def method_card(family: str, names: str | Sequence[str] | None) -> str:
    """Markdown card of one or more methods: paper (title, year, link), what it computes, its parameters with the
    paper's defaults and ranges, and where this implementation deviates from the official code."""
    if names is None:
        return ""
    known = {m.name: m for m in by_family(family)}
    parts = []
    for name in [names] if isinstance(names, str) else list(names):
        m = known.get(name)
        if m is None:
            continue
        if m.paper:
            link = f"[{m.paper.ref}]({m.paper.url})" if m.paper.url else m.paper.ref
            head = f"**{m.name}**: *{m.paper.title}* ({m.paper.year}, {link})"
        else:
            head = f"**{m.name}**: a baseline of this project (no paper)"
        lines = [head, "", m.summary]
        if m.params:
            rows = []
            for p in m.params:
                bounds = (f"{_fmt(p.low)}..{_fmt(p.high)}" if p.low is not None or p.high is not None
                          else ", ".join(map(str, p.choices)) if p.choices else "")  # fmt: skip
                rows.append(f"`{p.name}` = {_fmt(p.default)}" + (f" ({bounds})" if bounds else "")
                            + (f": {p.help}" if p.help else ""))  # fmt: skip
            lines += ["", "Parameters (defaults as in the paper): " + "; ".join(rows) + "."]
        if m.control:
            lines += ["", f"Random control: `{m.control}` makes the same cut at random."]
        lines += ["", "Deviations from the official code: " + (m.deviations or _docstring_deviations(m) or
                  f"not recorded on the method; see docs/{family}.md.")]  # fmt: skip
        parts.append("\n".join(lines))
    return "\n\n---\n\n".join(parts)


def method_dropdown(
    family: str,
    *,
    role: str | None = None,
    value: str | Sequence[str] | None = None,
    multiselect: bool = False,
    label: str = "Method",
    exclude: Sequence[str] = (),
    card: bool = True,
    **kwargs: Any,
) -> gr.Dropdown:
    """A dropdown of the family's registered methods; the default value must be one of them. With ``card``, an
    "About this method" accordion under it shows :func:`method_card` of the chosen method(s)."""
    choices = method_choices(family, role=role, exclude=exclude)
    if value is None:
        value = choices[:2] if multiselect else (choices[0] if choices else None)
    elif multiselect:
        value = [v for v in value if v in choices]
    elif value not in choices:
        value = choices[0] if choices else None
    dd = gr.Dropdown(choices, value=value, multiselect=multiselect, label=label, **kwargs)
    if card:
        with gr.Accordion("About this method" if not multiselect else "About these methods", open=False):
            info = gr.Markdown(method_card(family, value), elem_classes="caption")
        dd.change(
            lambda v: method_card(family, v), dd, info, queue=False, show_progress="hidden", api_name=False
        )
    return dd


def values(source: Method | Settings | Sequence[Param], names: Sequence[str], raw: Sequence[Any]) -> dict:
    """What the controls sent back, coerced and range-checked by the registry (raises InputError)."""
    params = tuple(source.params if isinstance(source, Method | Settings) else source)
    checked = Settings(getattr(source, "name", None) or getattr(source, "owner", "settings"), params)
    return checked.validate(dict(zip(names, raw, strict=True)), only=list(names))
