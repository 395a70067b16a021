"""Named examples, one click away in every tab (issue 13, part 6), and the same examples for `redex snapshot`.

An example is a tab, a name, the inputs it sets (keyed like a link's query: app/links.py) and the button whose
action it runs. app/main.py adds an "Examples" row to every tab: a click sets the inputs (checked against their
components, as a link's are) and runs that button's own handler, so the example is computed exactly as a
visitor's click would (and, once computed, served from the engine's result caches: the app warms them at start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

__all__ = [
    "Example",
    "EXAMPLES",
    "examples_for",
    "find_action",
    "add_examples_row",
    "wire_examples",
    "values_for",
]


@dataclass(frozen=True)
class Example:
    tab: str
    name: str
    inputs: dict[str, str] = field(default_factory=dict)  # link keys -> values, as in a link's query string
    action: str | None = None  # label of the button it presses (default: the tab's first primary button)


EXAMPLES: tuple[Example, ...] = (
    Example("layers", "SmolLM2: 8 windows x 256 tokens (default)"),
    Example("layers", "SmolLM2: 4 short windows x 64 tokens", {"samples": "4", "sample_length": "64"}),
    Example("layers", "MiniLM encoder: 8 windows x 128", {"model": "minilm", "sample_length": "128"}),
    Example("tokens", "FlowCut keeps 25% (scene 0)"),
    Example(
        "tokens",
        "FastV keeps 50% (scene 3)",
        {"method": "fastv", "kept_fraction_of_image": "0.5", "scene_index": "3"},
    ),  # fmt: skip
    Example(
        "tokens",
        "PyramidDrop keeps 11%, astronaut photo",
        {
            "image": "Example photo",
            "example_photo": "astronaut.png",
            "method": "pyramiddrop",
            "kept_fraction_of_image": "0.11",
        },
    ),  # fmt: skip
    Example("flow", "Attention rollout, scene 0"),
    Example("flow", "Attention flow, scene 2", {"method": "attention-flow", "scene_index": "2"}),
    Example("flow", "Rollout on the cat photo", {"image": "Example photo", "example_photo": "chelsea.png"}),
    Example("superposition", "Toy models: features vs neurons", action="Train toy models"),
    Example("superposition", "SmolLM2 layer 15 residual (default)"),
    Example("superposition", "SmolLM2 layer 5, MLP output", {"layer": "5", "site": "MLP output"}),
    Example("graphs", "Karate club, SSumM at 30%"),
    Example(
        "graphs",
        "Les Miserables, SSumM L1 at 10%",
        {"built_in_graph": "les_miserables", "budget": "0.1", "error_to_minimise": "l1"},
    ),  # fmt: skip
    Example(
        "graphs",
        "SBM graph, 20k edges, SAA-Gs",
        {"graph": "Generator", "generator": "sbm", "method": "saa-gs"},
    ),  # fmt: skip
    Example("splats", "LightGaussian keeps 34% (paper)"),
    Example("splats", "OMG at tau 0.96", {"method": "omg"}),
    Example("splats", "Random 34% (the control)", {"method": "random"}),
)


def examples_for(tab: str) -> list[Example]:
    return [e for e in EXAMPLES if e.tab == tab]


def find_action(demo, tab, label: str | None):
    """The BlockFunction that a click on the button ``label`` of ``tab`` runs (default: its first primary)."""
    from app.links import _walk

    buttons = [b for b in _walk(tab) if isinstance(b, gr.Button)]
    if label is None:
        chosen = next((b for b in buttons if b.variant == "primary"), None)
    else:
        chosen = next((b for b in buttons if b.value == label), None)
    if chosen is None:
        raise KeyError(f"tab {tab.id!r} has no button {label or '(primary)'!r}")
    for fn in demo.fns.values():
        if fn.fn is not None and any(t[0] == chosen._id and t[1] == "click" for t in fn.targets):
            return fn
    raise KeyError(f"button {chosen.value!r} of tab {tab.id!r} runs no handler")


def values_for(example: Example, carried: dict[str, Any]) -> dict[Any, Any]:
    """{component: value} for ``example``; KeyError/ValueError naming a key its tab does not accept."""
    from app.links import _parse

    out = {}
    for key, raw in example.inputs.items():
        if key not in carried:
            raise KeyError(f"example {example.name!r}: tab {example.tab!r} has no input {key!r}")
        out[carried[key]] = _parse(carried[key], raw)
    return out


def add_examples_row(tab_id: str, tab) -> None:
    """Inside a tab's context: one button per example (wired by :func:`wire_examples` once the app is built)."""
    found = examples_for(tab_id)
    if not found:
        tab._redex_examples = []
        return
    with gr.Row(equal_height=True):
        gr.Markdown("**Examples**", elem_classes="examples-label")
        tab._redex_examples = [(e, gr.Button(e.name, size="sm")) for e in found]


def wire_examples(demo, tabs: dict[str, Any]) -> None:
    for tab in tabs.values():
        carried, _ = tab._redex_link_inputs
        every = list(carried.values())
        for example, btn in getattr(tab, "_redex_examples", []):
            action = find_action(demo, tab, example.action)
            chosen = values_for(example, carried)
            defaults = {c: c.value for c in every}

            def set_inputs(chosen=chosen, defaults=defaults, every=every):
                return [gr.update(value=chosen.get(c, defaults[c])) for c in every]

            btn.click(set_inputs, None, every, queue=False, api_name=False).then(
                action.fn, action.inputs, action.outputs, api_name=False)  # fmt: skip
