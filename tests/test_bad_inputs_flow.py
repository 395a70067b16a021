"""Bad input to the Information Flow tab through its API (gradio_client against the launched app): every kind of
input (image upload, scene index, sliders, dropdowns and radios, model id, question, methods to compare) gets a
clear message, and the next normal request is served.

NaN and infinity cannot travel through gradio_client (its JSON refuses them), so those go through the plain HTTP
API with the JSON literals ``NaN`` / ``Infinity``, as any other client could send them.
"""

from __future__ import annotations

import json
import struct
import urllib.request
import zlib

import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ARGS = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vit",
            method="attention-rollout", residual=0.5, top_k=16, top_edges=300, question="how many objects ?",
            allow_net=False, target="CLS / answer token")  # fmt: skip
CMP = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vit",
           methods=["attention-rollout", "attention-flow"], residual=0.5, top_k=4, top_edges=100,
           question="how many objects ?", allow_net=False, target="CLS / answer token", top_fraction=0.1)  # fmt: skip


def _apply(client, **over):
    return client.predict(*{**ARGS, **over}.values(), api_name="/flow_apply")


def _compare(client, **over):
    return client.predict(*{**CMP, **over}.values(), api_name="/flow_compare")


def _refused(call, client, **over) -> str:
    with pytest.raises(AppError) as e:
        call(client, **over)
    return str(e.value)


def _still_serving(client):
    *_, caption, download = _apply(client)
    assert "attention-rollout" in caption and str(download).endswith(".json")


def _raw(app_url, api: str, data: list) -> tuple[str, str]:
    """(event, data) of one call through the plain HTTP API; the JSON may hold NaN / Infinity literals."""
    body = json.dumps({"data": data}).encode()  # allow_nan: NaN and Infinity are written as JSON literals
    req = urllib.request.Request(f"{app_url}gradio_api/call/{api}", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    text = urllib.request.urlopen(f"{app_url}gradio_api/call/{api}/{event_id}", timeout=120).read().decode()
    event = [ln[7:] for ln in text.splitlines() if ln.startswith("event: ")][-1]
    payload = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")][-1]
    return event, payload


def _png(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h pixels and whose data holds almost nothing (a lying header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from app.image_inputs import example_paths

    d = tmp_path_factory.mktemp("flow_bad")
    good = example_paths()["chelsea.png"].read_bytes()
    out = {
        "empty.png": b"",
        "truncated.png": good[:3000],
        "wrong.png": b"%PDF-1.4 a PDF under a .png name\n" * 20,
        "text.jpg": "plain text, not a JPEG \u00e9\n".encode() * 10,
        "bomb.png": _png(100_000, 100_000),  # 10^10 pixels declared, ~100 bytes on disk
    }
    for name, data in out.items():
        (d / name).write_bytes(data)
    with open(d / "huge.png", "wb") as f:  # over the 50 MB upload cap (sparse: cheap to make)
        f.write(_png(10, 10))
        f.truncate(60_000_000)
    return d


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.png", "is empty"),
        ("truncated.png", "corrupt or truncated"),
        ("wrong.png", "not an image"),
        ("text.jpg", "not an image"),
        ("bomb.png", "million pixels"),
    ],
)
def test_bad_image_upload(client, files, name, words):
    msg = _refused(_apply, client, source="Upload", upload=handle_file(str(files / name)))
    assert words in msg
    msg = _refused(_compare, client, source="Upload", upload=handle_file(str(files / name)))
    assert words in msg


def test_missing_and_huge_upload(client, files, app_url):
    assert "upload an image file first" in _refused(_apply, client, source="Upload", upload=None)
    with pytest.raises(
        ValueError, match="exceeds the maximum file size"
    ):  # the client reads the server's cap
        _apply(client, source="Upload", upload=handle_file(str(files / "huge.png")))
    # the server itself refuses an over-cap upload before keeping it (a client that does not check)
    import httpx

    with open(files / "huge.png", "rb") as fh:
        r = httpx.post(
            f"{app_url}gradio_api/upload", files={"files": ("huge.png", fh, "image/png")}, timeout=60
        )
    assert r.status_code >= 400 and "size" in r.text.lower()
    _still_serving(client)


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(scene_index=-1), "less than minimum"),
        (dict(scene_index=10**9), "greater than maximum"),
        (dict(scene_index=2.5), "whole number"),
        (dict(scene_index="abc"), "Expected a `float"),
        (dict(residual=-0.5), "less than minimum"),
        (dict(residual=1.5), "greater than maximum"),
        (dict(residual="nan"), "Expected a `float"),
        (dict(top_k=0), "less than minimum"),
        (dict(top_k=2.5), "top_k"),  # fractional, even where the method (rollout) does not use it
        (dict(top_edges=15.5), "top_edges"),
        (dict(top_edges=10**6), "greater than maximum"),
    ],
)
def test_bad_numbers(client, over, words):
    assert words in _refused(_apply, client, **over)


@pytest.mark.parametrize(
    "index, value, words",
    [
        (1, float("nan"), "scene index must be a whole number"),
        (1, float("inf"), "greater than maximum"),
        (6, float("nan"), "residual"),
        (6, float("inf"), "greater than maximum"),
        (7, float("nan"), "top_k"),
        (8, float("-inf"), "less than minimum"),
    ],
)
def test_nan_and_inf_through_http(app_url, index, value, words):
    data = list(ARGS.values())
    data[index] = value
    event, payload = _raw(app_url, "flow_apply", data)
    assert event == "error" and words in json.loads(payload)["error"]


def test_nan_top_fraction_through_http(app_url, client):
    data = list(CMP.values())
    data[-1] = float("nan")
    event, payload = _raw(app_url, "flow_compare", data)
    assert event == "error" and "top_fraction" in json.loads(payload)["error"]
    _still_serving(client)


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(method="no-such-method"), "not in the list of choices"),
        (dict(source="Webcam"), "not in the list of choices"),
        (dict(target="everything"), "not in the list of choices"),
        (dict(source="Example photo", example="../../etc/passwd"), "not in the list of choices"),
        (dict(source="Example photo", example=None), "pick an example photo"),
    ],
)
def test_values_outside_choices(client, over, words):
    assert words in _refused(_apply, client, **over)


@pytest.mark.parametrize(
    "model, words",
    [
        ("../../secret", "unknown vision model"),
        ("https://evil.example.com/model", "unknown vision model"),
        ("a" * 5000, "at most"),
        ("owner/" + "x" * 300, "at most"),
        ("/etc", "/etc"),  # a server folder: refused (which message depends on REDEX_PUBLIC), never loaded
    ],
)
def test_bad_model_ids(client, model, words):
    msg = _refused(_apply, client, model=model)
    assert words in msg and "Traceback" not in msg


def test_bad_questions(client):
    msg = _refused(_apply, client, model="scene-vlm", question="\x00\ufffd\u202e how many zebras ?")
    assert "scene vocabulary" in msg and "zebras" in msg
    assert "too long" in _refused(_apply, client, model="scene-vlm", question="red " * 5000)
    _still_serving(client)


@pytest.mark.parametrize(
    "over, words",
    [
        (dict(methods=[]), "at least one"),
        (dict(methods=["attention-rollout", "no-such"]), "not in the list of choices"),
        (dict(top_fraction=0.0), "less than minimum"),
        (dict(top_fraction=2.0), "greater than maximum"),
        (dict(top_k=2.5), "top_k"),
    ],
)
def test_bad_compare_inputs(client, over, words):
    assert words in _refused(_compare, client, **over)


def test_served_after_all_of_it(client):
    _still_serving(client)
    overlays, agree, table, caption, files = _compare(client)
    assert "attention-flow" in caption and len(table["data"]) == 2
