"""Links that restore a view (issue 13, part 3): the URL holds the tab and its inputs.

Every tab gets a "Link to this view" control (added by app/main.py, so no tab wires it by hand): it writes
``?tab=<id>&<input>=<value>...`` from the tab's own input components (sliders, numbers, dropdowns, checkboxes,
radios, short text fields), keyed by their labels. Opening such a link selects the tab, sets each input after
checking it against the component (choices, bounds, length), and presses the tab's first primary button, so the
view is computed again (or served from the result cache). Inputs a link cannot carry (uploads, long pasted text)
are named on the page as missing, never silently replaced; values a component refuses are named as ignored.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import urlencode

import gradio as gr

__all__ = ["tab_inputs", "link_for", "restore", "add_link_row", "wire_restore", "TAB_JS"]

SCALAR = (gr.Slider, gr.Number, gr.Dropdown, gr.Checkbox, gr.Radio, gr.CheckboxGroup, gr.Textbox)
UNCARRIED = (gr.File, gr.Image, gr.Model3D, gr.UploadButton)
MAX_TEXT = 300  # characters of a text field a link carries; longer text is named as missing


def _slug(label: str) -> str:
    """A short key from a label: its first words, at most 24 characters ("Kept fraction of image tokens" ->
    "kept_fraction_of_image")."""
    words = re.sub(r"\([^)]*\)", " ", (label or "").lower())
    words = re.sub(r"[^a-z0-9]+", " ", words).split()
    key = ""
    for w in words:
        if key and len(key) + 1 + len(w) > 24:
            break
        key = f"{key}_{w}" if key else w[:24]
    return key or "input"


def _walk(block) -> list:
    out = []
    for child in getattr(block, "children", []) or []:
        out.append(child)
        out.extend(_walk(child))
    return out


def _event_inputs(demo) -> set[int]:
    ids: set[int] = set()
    for fn in demo.fns.values():
        ids.update(getattr(b, "_id", None) for b in fn.inputs)
    return ids


def tab_inputs(demo, tab) -> tuple[dict[str, Any], dict[str, Any]]:
    """(carried, uncarried): the tab's components that feed an event, keyed by a slug of their label."""
    used = _event_inputs(demo)
    carried: dict[str, Any] = {}
    uncarried: dict[str, Any] = {}
    for b in _walk(tab):
        if b._id not in used:
            continue
        if isinstance(b, UNCARRIED) or (isinstance(b, gr.Textbox) and (b.lines or 1) > 2):
            target = uncarried
        elif isinstance(b, SCALAR):
            target = carried
        else:
            continue
        key = base = _slug(getattr(b, "label", "") or type(b).__name__)
        n = 2
        while key in carried or key in uncarried or key in ("tab", "present", "run", "missing"):
            key, n = f"{base}_{n}", n + 1
        target[key] = b
    return carried, uncarried


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def link_for(base: str, tab_id: str, carried: dict[str, Any], uncarried: dict[str, Any],
             values: list[Any]) -> str:  # fmt: skip
    """The URL of the view: ``base`` plus the tab and every carried input's current value."""
    keys = list(carried) + list(uncarried)
    query: list[tuple[str, str]] = [("tab", tab_id)]
    missing = []
    for key, value in zip(keys, values, strict=True):
        comp = carried.get(key)
        if comp is None:
            if value not in (None, "", [], {}):
                missing.append(uncarried[key].label or key)
            continue
        if value is None:
            continue
        if isinstance(comp, gr.Textbox) and len(str(value)) > MAX_TEXT:
            missing.append(comp.label or key)
            continue
        query.append((key, _encode(value)))
    if missing:
        query.append(("missing", ",".join(missing)))
    return base.rstrip("/") + "/?" + urlencode(query)


def _choices(comp) -> list[Any]:
    return [c[1] if isinstance(c, list | tuple) else c for c in (comp.choices or [])]


def _parse(comp, raw: str) -> Any:
    """The value ``raw`` means for ``comp``; ValueError when the component would not accept it."""
    if isinstance(comp, gr.Checkbox):
        if raw not in ("true", "false"):
            raise ValueError("not true/false")
        return raw == "true"
    if isinstance(comp, gr.Slider | gr.Number):
        x = float(raw)
        if not math.isfinite(x):
            raise ValueError("not a finite number")
        low = getattr(comp, "minimum", None)
        high = getattr(comp, "maximum", None)
        if (low is not None and x < low) or (high is not None and x > high):
            raise ValueError(f"outside {low}..{high}")
        return int(x) if x.is_integer() and (isinstance(comp, gr.Slider) and float(comp.step or 1).is_integer()
                                             or getattr(comp, "precision", None) == 0) else x  # fmt: skip
    if isinstance(comp, gr.CheckboxGroup) or (isinstance(comp, gr.Dropdown) and comp.multiselect):
        items = json.loads(raw)
        if not isinstance(items, list) or any(i not in _choices(comp) for i in items):
            raise ValueError("not among the choices")
        return items
    if isinstance(comp, gr.Dropdown | gr.Radio):
        choices = _choices(comp)
        for c in choices:
            if str(c) == raw:
                return c
        if isinstance(comp, gr.Dropdown) and comp.allow_custom_value and len(raw) <= MAX_TEXT:
            return raw
        raise ValueError("not among the choices")
    if isinstance(comp, gr.Textbox):
        if len(raw) > MAX_TEXT:
            raise ValueError("too long")
        return raw
    raise ValueError("not carried by links")


def restore(params: dict[str, str], tabs: dict[str, tuple[dict[str, Any], dict[str, Any]]]):
    """(tab id or None, {component: value}, notice markdown) for a page opened with ``params``."""
    tab = params.get("tab")
    if tab not in tabs:
        return None, {}, ""
    carried, _ = tabs[tab]
    values, ignored = {}, []
    for key, raw in params.items():
        if key in ("tab", "present", "run", "missing"):
            continue
        comp = carried.get(key)
        if comp is None:
            ignored.append(f"`{key}` (no such input on this tab)")
            continue
        try:
            values[comp] = _parse(comp, raw)
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            ignored.append(f"`{key}={raw[:40]}` ({e})")
    notes = []
    if params.get("missing"):
        notes.append(f"This link's view used input a link cannot carry: **{params['missing']}**. "
                     "Upload or paste it again and press the button; the other inputs are restored.")  # fmt: skip
    if ignored:
        notes.append("Ignored from the link: " + ", ".join(ignored) + ".")
    return tab, values, "\n\n".join(notes)


def _current_request():
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def _base_url(request: gr.Request | None) -> str:
    if request is None:
        return "http://127.0.0.1:7860"
    headers = request.headers
    host = headers.get("x-forwarded-host") or headers.get("host") or "127.0.0.1:7860"
    proto = headers.get("x-forwarded-proto") or request.url.scheme or "http"
    return f"{proto}://{host}"


def add_link_row(tab_id: str, tab) -> None:
    """Inside a tab's context: a button that writes the link of the view into a copyable text field."""
    with gr.Row():
        btn = gr.Button("Link to this view", size="sm", scale=0, min_width=160)
        box = gr.Textbox(show_label=False, placeholder="press the button: a link that restores this view",
                         buttons=["copy"], interactive=False, scale=4, container=False)  # fmt: skip

    def make(*values):
        carried, uncarried = tab._redex_link_inputs
        return link_for(_base_url(_current_request()), tab_id, carried, uncarried, list(values))

    tab._redex_link_row = (btn, box, make)


HEAD = "<script>window.__redexSearch = window.location.search;</script>"  # the URL as opened, before any tab
# select rewrites it


def wire_restore(demo, tabs_component, tabs: dict[str, Any], notice) -> None:
    """After the whole app is built: wire every tab's link button, and restore a linked view on page load."""
    inputs_by_tab = {}
    for tab_id, tab in tabs.items():
        carried, uncarried = tab_inputs(demo, tab)
        tab._redex_link_inputs = (carried, uncarried)
        inputs_by_tab[tab_id] = (carried, uncarried)
        btn, box, make = tab._redex_link_row
        btn.click(make, list(carried.values()) + list(uncarried.values()), [box], queue=False, api_name=False)
    every = [c for carried, _ in inputs_by_tab.values() for c in carried.values()]

    search = gr.Textbox(visible=False)

    def on_load(query: str):
        from urllib.parse import parse_qsl

        params = dict(parse_qsl((query or "").lstrip("?")[:4000]))
        tab, values, note = restore(params, inputs_by_tab)
        updates = [gr.update(value=values[c]) if c in values else gr.update() for c in every]
        selected = gr.Tabs(selected=tab) if tab else gr.update()
        return [selected, gr.update(value=note, visible=bool(note)), *updates]

    demo.load(on_load, [search], [tabs_component, notice, *every], queue=False, api_name=False,
              js="() => window.__redexSearch || window.location.search").then(None, None, None, js=RUN_JS)  # fmt: skip


RUN_JS = """() => {
  const p = new URLSearchParams(window.__redexSearch || window.location.search);
  const tab = p.get('tab');
  if (!tab || p.get('run') === '0') return;
  setTimeout(() => {
    const panel = document.getElementById('tab-' + tab);
    const btn = panel && panel.querySelector('button.primary');
    if (btn) btn.click();
  }, 600);
}"""

TAB_JS = """(id) => {
  const u = new URL(window.location.href);
  if (u.searchParams.get('tab') !== id) {
    const present = u.searchParams.get('present');
    u.search = '';
    u.searchParams.set('tab', id);
    if (present) u.searchParams.set('present', present);
    window.history.replaceState(null, '', u);
  }
}"""
