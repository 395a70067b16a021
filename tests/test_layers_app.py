"""The Layer Redundancy tab through gradio_client against the launched app (real model, real requests)."""

from __future__ import annotations

import pytest

DEFAULT = "Default corpus (Python stdlib docstrings)"


def scan(client, *, model="smollm2", source=DEFAULT, text="", upload=None, samples=4, seq_len=64, head=-1):
    return client.predict(model, False, source, text, upload, samples, seq_len, head, api_name="/layers_scan")


def test_scan_preselect_apply_curve(client):
    out = scan(client)
    caption, heat = out[0], out[1]
    assert "smollm2" in caption and "4 samples × 64 tokens" in caption
    assert heat is not None
    assert out[5]["value"] and len(out[5]["choices"]) == 30  # attention layers preselected by ranking
    csv_path = out[8][0]
    with open(csv_path) as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("index,attn_similarity") and len(lines) == 31

    attn, mlp, block = client.predict("mlp-drop", 3, False, 42, api_name="/layers_preselect")
    assert attn == [] and len(mlp) == 3 and block == []

    cap, table, full_s, drop_s, heat2, files = client.predict(
        [26, 27], [], [], "Name a colour.", 4, api_name="/layers_apply"
    )
    metrics = {row[0]: row for row in table["data"]}
    assert float(metrics["perplexity"][2].replace(",", "")) > float(metrics["perplexity"][1].replace(",", ""))
    assert "perplexity" in cap and "KV cache 6.7% smaller" in cap
    assert isinstance(full_s, str) and isinstance(drop_s, str)

    cap, fig, files = client.predict(["attn", "random-attn"], 2, 2, 1, api_name="/layers_curve")
    assert "attn:" in cap and any(f.endswith(".csv") for f in files)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": "Pasted text", "text": ""}, "text box is empty"),
        ({"source": "Pasted text", "text": "too short"}, "fewer than"),
        ({"samples": 0}, "sample count|less than minimum"),
        ({"seq_len": 5000}, "sample length|greater than maximum"),
        ({"model": "nobody/nothing"}, "network access is off"),
        ({"model": "not-a-model"}, "unknown model"),
        ({"head": 99}, "out of range"),
        ({"source": "Uploaded file"}, "no file uploaded"),
    ],
)
def test_bad_inputs_get_messages_and_server_keeps_serving(client, kwargs, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        scan(client, **kwargs)
    assert "smollm2" in scan(client)[0]  # still serving


def test_binary_upload_is_refused(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "blob.txt"
    bad.write_bytes(b"\x00\x01\x02binary" * 100)
    with pytest.raises(AppError, match="binary"):
        scan(client, source="Uploaded file", upload=handle_file(str(bad)))


def test_uploaded_text_is_used(client, tmp_path):
    from gradio_client import handle_file

    good = tmp_path / "notes.txt"
    good.write_text(
        "\n\n".join(
            f"Paragraph {i}: " + "the quick brown fox jumps over the lazy dog. " * 8 for i in range(40)
        )
    )
    out = scan(client, source="Uploaded file", upload=handle_file(str(good)), samples=2, seq_len=64)
    assert "user text" in out[0]


def test_apply_without_scan_and_empty_plan(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    fresh = Client(app_url, verbose=False)
    with pytest.raises(AppError, match="run Compute first"):
        fresh.predict([], [], [], "hi", 4, api_name="/layers_apply")
    scan(fresh)
    with pytest.raises(AppError, match="at least one layer"):
        fresh.predict([], [], [], "hi", 4, api_name="/layers_apply")
