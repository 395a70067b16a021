"""The Information Flow tab through gradio_client: the default run, and a bad upload that leaves the app serving."""

from __future__ import annotations

import pytest

ARGS = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vit",
            method="attention-rollout", residual=0.5, top_k=16, top_edges=300, question="how many objects ?",
            allow_net=False, target="CLS / answer token")  # fmt: skip


def _call(client, **over):
    a = {**ARGS, **over}
    return client.predict(*a.values(), api_name="/flow_apply")


def test_default_run(client):
    overlay, graph, entropy, table, caption, export = _call(client)
    assert "attention-rollout" in caption and "scene-vit" in caption
    assert export and str(export).endswith(".json")


def test_bad_upload_then_still_serving(client, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a truncated")
    with pytest.raises(Exception, match="not an image|corrupt"):
        _call(client, source="Upload", upload=handle_file(str(bad)))
    *_, caption, _ = _call(
        client, source="Example photo", model="scene-vlm", question="is there a red circle ?"
    )
    assert "scene-vlm" in caption and "resized" in caption
