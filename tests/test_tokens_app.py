"""The Visual Token Pruning tab through gradio_client: a run, bad input with a clear message, still serving."""

from __future__ import annotations

import pytest

ARGS = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vlm",
            method="flowcut", keep=0.25, layer=-1, K=-1, question="how many objects ?", stage=3, control=False, seed=0)  # fmt: skip


def _call(client, **over):
    a = {**ARGS, **over}
    return client.predict(*a.values(), api_name="/tokens_prune")


def test_prune_then_bad_keep_then_still_serving(client):
    pic, a_full, a_pruned, table, caption = _call(client)
    assert "flowcut" in caption and a_full and a_pruned
    with pytest.raises(Exception, match="keep fraction|minimum value"):  # gradio checks the slider first
        _call(client, keep=0.0)
    with pytest.raises(Exception, match="vision-language"):
        _call(client, model="scene-vit")
    *_, caption = _call(client, method="pyramiddrop", question="how many red objects ?", stage=1)
    assert "before LM layer 2" in caption


def test_every_view_downloads_the_data_behind_its_figure(client):
    """Issue 13: the overlay, the comparison (tiles and IoU) and the Pareto plot each download CSVs of their
    data (from the result's own tables) next to the JSON and PNGs; two identical requests get their own files."""
    import csv
    from pathlib import Path

    got = client.predict(*ARGS.values(), api_name="/tokens_download")
    patches = next(f for f in got if f.endswith("_patches.csv"))
    rows = list(csv.DictReader(open(patches)))
    assert len(rows) == 196 and sum(int(r["kept"]) for r in rows) == 49
    assert {"row", "col", "score", "kept after step 3"} <= set(rows[0])
    # the same request again: the same bytes, served from gradio's write-once copy (never rewritten in place)
    again = client.predict(*ARGS.values(), api_name="/tokens_download")
    assert sorted(Path(f).read_bytes() for f in again) == sorted(Path(f).read_bytes() for f in got)
    cmp = ["Generated scene", 0, "chelsea.png", None, "scene-vlm", ["cls-attention", "random-keep"], 0.25,
           "how many objects ?"]  # fmt: skip
    got = client.predict(*cmp, api_name="/tokens_compare_download")
    names = {Path(f).name for f in got}
    assert {"tokens_compare_comparison.csv", "tokens_compare_agreement.csv", "tokens_compare_kept.csv",
            "tokens_compare.json", "overlays.png"} <= names  # fmt: skip
    kept = list(csv.DictReader(open(next(f for f in got if f.endswith("_kept.csv")))))
    assert len(kept) == 196 and sum(int(r["random-keep"]) for r in kept) == 49
    got = client.predict(api_name="/tokens_pareto_download")
    table = list(csv.DictReader(open(next(f for f in got if f.endswith("tokens_pareto_comparison.csv")))))
    assert len(table) == 27 and {"method", "keep", "accuracy", "control_accuracy_mean"} <= set(table[0])
