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
