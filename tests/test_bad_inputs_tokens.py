"""Bad input to the Visual Token Pruning tab through the API (gradio_client against the launched app): every
input kind (image upload, model id, numbers, dropdowns, question text) gets a clear message that names the
problem, and the next normal request is served. Plus the model field's public-deployment rule, in process."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

ARGS = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vlm",
            method="flowcut", keep=0.25, layer=-1, K=-1, question="how many objects ?", stage=3, control=False,
            seed=0)  # fmt: skip
CMP = dict(source="Generated scene", scene_index=0, example="chelsea.png", upload=None, model="scene-vlm",
           methods=["cls-attention", "random-keep"], keep=0.25, question="how many objects ?")  # fmt: skip


def _prune(client, **over):
    a = {**ARGS, **over}
    return client.predict(*a.values(), api_name="/tokens_prune")


def _refused(client, words: str, api: str = "/tokens_prune", **over) -> str:
    """Call with ``over`` and check the error message matches ``words`` (a regex, case-insensitive)."""
    a = {**(CMP if api == "/tokens_compare" else ARGS), **over}
    with pytest.raises(Exception) as info:
        client.predict(*a.values(), api_name=api)
    msg = str(info.value)
    assert re.search(words, msg, re.I), msg
    return msg


def _raw(app_url: str, api: str, values: dict) -> str:
    """Send ``values`` as raw JSON (NaN and Infinity included, which gradio_client refuses to encode) to the
    REST route of ``api`` and return the text of the event stream it answers with."""
    import json
    import urllib.request

    base = app_url.rstrip("/") + f"/gradio_api/call/{api.strip('/')}"
    body = json.dumps({"data": list(values.values())}).encode()  # allow_nan: NaN / Infinity literals
    req = urllib.request.Request(base, data=body, headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=60).read())["event_id"]
    return urllib.request.urlopen(f"{base}/{event}", timeout=120).read().decode()


def _raw_refused(app_url: str, words: str, api: str = "/tokens_prune", **over) -> None:
    base = (
        CMP if api == "/tokens_compare" else {**ARGS, "alpha": 1.0, "query": "all"}
    )  # every input, in order
    text = _raw(app_url, api, {**base, **over})
    assert "event: error" in text and re.search(words, text, re.I), text


def _serves(client) -> None:
    *_, caption = _prune(client)
    assert "flowcut" in caption and "49 of 196" in caption


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _lying_png(w: int, h: int) -> bytes:
    """A 1x1 PNG whose header (IHDR, valid CRC) declares ``w`` x ``h`` pixels."""
    data = bytearray(_png(Image.new("RGB", (1, 1))))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_images")
    rng = np.random.default_rng(0)
    good = _png(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    out = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "text": b"this is plain text, not a picture\n" * 20,
        "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",
        "bomb": _lying_png(60000, 60000),  # 3.6 G pixels: Pillow's own guard
        "large": _lying_png(7000, 7000),  # 49 M pixels: under Pillow's guard, over the app's cap
        "tiny": _png(Image.new("RGB", (4, 4))),
        "jpeg": jpeg.getvalue(),  # a JPEG named .png: the content decides
    }
    paths = {}
    for name, data in out.items():
        p = d / f"{name}.png"
        p.write_bytes(data)
        paths[name] = str(p)
    return paths


def _upload_raw(app_url: str, name: str, data: bytes) -> tuple[int, str]:
    """POST ``data`` to the app's upload route as a file (gradio_client refuses over-cap files itself, so the
    server's own check is reached only this way); (HTTP status, body)."""
    import urllib.error
    import urllib.request
    import uuid

    b = uuid.uuid4().hex
    head = (f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()  # fmt: skip
    req = urllib.request.Request(app_url.rstrip("/") + "/gradio_api/upload", data=head + data + f"\r\n--{b}--\r\n".encode(),
                                 headers={"Content-Type": f"multipart/form-data; boundary={b}"})  # fmt: skip
    try:
        r = urllib.request.urlopen(req, timeout=60)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_image_uploads(client, files, app_url):
    from gradio_client import handle_file

    def up(name):
        return dict(source="Upload", upload=handle_file(files[name]))

    _refused(client, "upload an image file first", source="Upload", upload=None)
    _refused(client, r"empty", **up("empty"))
    _refused(client, r"corrupt or truncated", **up("truncated"))
    _refused(client, r"not an image this app reads.*PNG, JPEG", **up("text"))
    _refused(client, r"not an image this app reads", **up("eps"))  # PostScript is never handed to ghostscript
    _refused(client, r"decompression bomb", **up("bomb"))
    _refused(client, r"declares 7000x7000 = 49 million pixels.*refusing to decode", **up("large"))
    _refused(client, r"at least 8 px", **up("tiny"))
    code, body = _upload_raw(
        app_url, "big.png", b"\x89PNG\r\n\x1a\n" + bytes(50_000_001)
    )  # over the 50 MB cap
    assert code == 413 and "exceeded maximum allowed size" in body
    *_, caption = _prune(client, **up("jpeg"))
    assert "uploaded jpeg.png" in caption
    _serves(client)


def test_model_ids(client):
    _refused(client, "vision-language", model="scene-vit")
    _refused(client, r"network access is off", model="openai/clip-vit-base-patch32")
    _refused(client, r"5,000 characters", model="a" * 5000)
    for bad in ("https://example.com/model", "owner/../name", "~/x"):
        _refused(client, r"unknown vision model .*not a built-in \(scene-vit, scene-vlm\)", model=bad)
    _refused(client, r"cannot load '\.\.': .*model_type", model="..")  # a folder without a model in it
    *_, caption = _prune(client, model="")  # an empty field means the default model
    assert "scene-vlm" in caption
    _serves(client)


def test_numbers(client, app_url):
    nan, inf = float("nan"), float("inf")
    _raw_refused(app_url, r"parameter 'keep' is NaN", keep=nan)
    _raw_refused(app_url, r"Value inf is greater than maximum value 1", keep=inf)
    _raw_refused(app_url, r"Value -inf is less than minimum value 0.01", keep=-inf)
    for keep in (-0.5, 0.0):
        _refused(client, rf"Value {keep} is less than minimum value 0.01", keep=keep)
    _refused(client, r"Value 2.0 is greater than maximum value 1", keep=2.0)
    _raw_refused(app_url, r"scene index must be a whole number, got nan", scene_index=nan)
    _refused(client, r"scene index must be a whole number, got 2.5", scene_index=2.5)
    _refused(client, r"less than minimum value 0", scene_index=-1)
    _refused(client, r"greater than maximum value 100000", scene_index=10**9)
    _refused(client, r"less than minimum value 0", stage=-1)
    _raw_refused(app_url, r"step must be a whole number, got nan", stage=nan)
    _raw_refused(app_url, r"control seed must be a whole number, got nan", seed=nan, control=True)
    _raw_refused(app_url, r"greater than maximum value 10000", seed=inf, control=True)
    _refused(client, r"control seed must be a whole number, got 1.5", seed=1.5, control=True)
    _refused(client, r"less than minimum value 0", seed=-3, control=True)
    _refused(client, r"parameter 'layer' must be int, got 2.5", method="cls-attention", layer=2.5)
    _refused(client, r"layer 40 is out of range", method="cls-attention", layer=40)
    _refused(client, r"K must be in 1..7", method="fastv", K=9)
    _raw_refused(app_url, r"parameter 'alpha' is NaN", method="turbo", alpha=nan)
    _raw_refused(app_url, r"parameter 'keep' is NaN", api="/tokens_compare", keep=nan)
    _serves(client)


def test_dropdowns_and_text(client, app_url):
    _refused(client, r"no-such-method is not in the list of choices", method="no-such-method")
    _refused(client, r"\.\./flowcut is not in the list of choices", method="../flowcut")
    _refused(client, r"'Webcam' .*is not in the list of choices", source="Webcam")
    _refused(client, r"\.\./\.\./etc/passwd is not in the list of choices", source="Example photo",
             example="../../etc/passwd")  # fmt: skip
    _refused(
        client,
        r"'bogus' .*is not in the list of choices",
        api="/tokens_compare",
        methods=["flowcut", "bogus"],
    )
    _raw_refused(app_url, r"sideways is not in the list of choices", method="fastv", query="sideways")
    _refused(client, r"at least two methods", api="/tokens_compare", methods=["flowcut"])
    _refused(client, r"unknown word\(s\) \['zebras'\]", question="how many zebras ?")
    _refused(client, r"unknown word", question="h\xe9llo \x00 \ufffd ?")  # not UTF-8 text once, NUL, U+FFFD
    _refused(client, r"the question has 11,999 characters; at most 500", question="how " * 3000)
    *_, caption = _prune(client, question="")  # empty: the default question
    assert "Question *how many objects ?*" in caption
    _serves(client)


def test_compare_after_bad_input(client):
    tiles, plot, cap = client.predict(*CMP.values(), api_name="/tokens_compare")
    assert "2 methods" in cap and tiles


def test_public_deployment_model_field_is_no_directory_oracle(monkeypatch, tmp_path):
    from engine.registry import InputError
    from engine.vision.loading import load_vision

    monkeypatch.setenv("REDEX_PUBLIC", "1")
    msgs = []
    for name in (str(tmp_path), str(tmp_path / "missing"), "/etc", "../x"):
        with pytest.raises(InputError) as info:
            load_vision(name)
        msgs.append(str(info.value).replace(repr(name), "NAME"))
    assert len(set(msgs)) == 1 and "does not load models from the server's folders" in msgs[0]
