"""Overview: the tab the app opens on. One card per family: its headline picture, one sentence, a button to its tab.

The pictures are the families' default views, rendered by ``scripts/make_overview.py`` from the app's own
endpoints into assets/overview/ (see its CARD.md); a missing picture leaves the card's text and button.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

TAB_TITLE = "Overview"
TAB_ORDER = 0

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "overview"

# tab id -> what a first-time visitor should take away from that tab, in one sentence
SENTENCES = {
    "layers": "Transformer layers whose output barely differs from their input can be dropped: score every "
              "attention and MLP sublayer of a real LLM, drop the most redundant, and measure what it costs.",
    "tokens": "Most image tokens a vision-language model reads are redundant: prune them with FlowCut, FastV, "
              "PyramidDrop, LLaVolta or Turbo and see which survive and how much accuracy is kept.",
    "flow": "Where does information travel inside a vision transformer? Attention rollout and attention flow "
            "trace it from image patches to the answer, layer by layer.",
    "superposition": "Neurons hold more features than they have dimensions: a sparse autoencoder counts the "
                     "features packed into one layer, and how that packing changes across layers.",
    "graphs": "A graph's nodes with the same neighbours are redundant: SSumM merges them into supernodes within "
              "a bit budget, and the error of the summary shows what was lost.",
    "splats": "Many Gaussians of a 3D scene add nothing to its renders: LightGaussian and OMG prune them, and the "
              "size vs quality curve shows how far each can go.",
}  # fmt: skip


def _cards() -> list[tuple[str, str, str, Path | None]]:
    from app.main import tab_modules

    out = []
    for mod in tab_modules():
        tab_id = mod.__name__.rsplit(".", 1)[-1]
        if tab_id not in SENTENCES:
            continue
        picture = ASSETS / f"{tab_id}.png"
        out.append((tab_id, mod.TAB_TITLE, SENTENCES[tab_id], picture if picture.exists() else None))
    return out


def build_tab() -> None:
    gr.Markdown(
        "Redundancy is what a network or a data set can lose without losing what it does. Each tab below "
        "measures one kind, applies the methods from the papers that remove it, and compares them with a random "
        "control on the same input. Pick a card to open its tab; every tab has examples, a download bundle with "
        "the figure and the data, and a link that restores the view."
    )
    cards = _cards()
    for row in range(0, len(cards), 3):
        with gr.Row(equal_height=True):
            for tab_id, title, sentence, picture in cards[row : row + 3]:
                with gr.Column(min_width=300):
                    if picture is not None:
                        gr.Image(str(picture), show_label=False, interactive=False, height=230,
                                 buttons=[], elem_classes="overview-picture")  # fmt: skip
                    gr.Markdown(f"**{title}**. {sentence}")
                    btn = gr.Button(f"Open {title}", size="sm")
                    btn.click(
                        None, None, None, js=f"() => document.getElementById('tab-{tab_id}-button').click()"
                    )
