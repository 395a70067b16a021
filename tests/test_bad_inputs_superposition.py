"""Bad input for every kind of field of the Superposition tab, through gradio_client against the launched app.

Each bad request must get a clear message (checked by its words) and the app must serve the next normal
request. The normal request is the one-layer view's defaults, which answer from the shipped precomputed
measurement (no model load, no training), so the whole file runs in seconds. Engine-level checks of the
safetensors header (the cap on a small scale, lying offsets) are at the bottom, without the app.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore")

SITE = "residual stream"
DEFAULT_SOURCE = "Default corpus (Python stdlib docstrings)"
MEASURE = "/superposition_measure"


def _measure(client, *, model="smollm2", layer=15, site=SITE, source=DEFAULT_SOURCE, text="", upload=None,
             expansion=4, l1=1.0, max_acts=2048, max_epochs=300, sae=None):  # fmt: skip
    return client.predict(model, False, layer, site, source, text, upload, expansion, l1, max_acts, max_epochs,
                          sae, api_name=MEASURE)  # fmt: skip


def _refused(fn, *words):
    """``fn()`` raises, and its message has every one of ``words`` (case-insensitive)."""
    with pytest.raises(Exception) as e:
        fn()
    msg = str(e.value).lower()
    for w in words:
        assert w.lower() in msg, f"{w!r} not in {msg!r}"
    return msg


def _still_serving(client):
    caption, table, *_ = _measure(client)
    assert "F = exp(H)" in caption and "precomputed" in caption.lower()
    assert not caption.startswith("⚠")  # the default is converged and sparse: no warning


# ------------------------------------------------------------------------------------------ SAE files


def _st(tensors: dict[str, tuple[str, list[int]]], *, extra: bytes = b"", header_len: int | None = None,
        cut: int = 0) -> bytes:  # fmt: skip
    """A hand-built safetensors file: zero data, and a header that may lie (``header_len``, ``cut``)."""
    size = {"F32": 4, "F16": 2, "I64": 8}
    header, off = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    blob = struct.pack("<Q", len(h) if header_len is None else header_len) + h + bytes(off) + extra
    return blob[: len(blob) - cut] if cut else blob


GOOD = {
    "W_enc": ("F32", [576, 8]),
    "b_enc": ("F32", [8]),
    "W_dec": ("F32", [8, 576]),
    "b_dec": ("F32", [576]),
}


@pytest.fixture(scope="module")
def sae_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sae_uploads")
    files = {
        "empty.safetensors": b"",
        "text.safetensors": b"this is plain text, not a safetensors file at all\n" * 4,
        "short.safetensors": b"\x01\x02\x03",
        "liar_header.safetensors": _st(GOOD, header_len=10**9),
        "truncated.safetensors": _st(GOOD, cut=100),
        "int_dtype.safetensors": _st({**GOOD, "W_enc": ("I64", [576, 8])}),
        "bad_shapes.safetensors": _st({**GOOD, "W_dec": ("F32", [9, 576])}),
        "missing.safetensors": _st({"W_enc": ("F32", [576, 8])}),
        "not_json_header.safetensors": struct.pack("<Q", 4) + b"\xff\xfe\x00\x01",
        "weights.pt": b"PK\x03\x04 a pickle would be here",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    # a real pickle under the right extension: refused as not-safetensors, never unpickled
    torch.save({"W_enc": torch.zeros(2, 2)}, d / "pickle.safetensors")
    (d / "cfg_bad.json").write_bytes(b"\xff\xfe not json")
    (d / "good.safetensors").write_bytes(_st(GOOD))
    return d


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.safetensors", ["empty"]),
        ("short.safetensors", ["truncated"]),
        ("text.safetensors", ["header says", "bytes"]),
        ("liar_header.safetensors", ["header says", "1,000,000,000"]),
        ("truncated.safetensors", ["truncated", "b_dec"]),
        ("int_dtype.safetensors", ["dtype", "I64", "float"]),
        ("bad_shapes.safetensors", ["shapes do not agree"]),
        ("missing.safetensors", ["lacks", "b_enc"]),
        ("not_json_header.safetensors", ["not a safetensors file"]),
        ("pickle.safetensors", ["safetensors"]),
        ("weights.pt", [".safetensors", ".json"]),
    ],
)
def test_bad_sae_files(client, sae_files, name, words):
    from gradio_client import handle_file

    _refused(lambda: _measure(client, sae=[handle_file(str(sae_files / name))]), *words)


def test_bad_sae_cfg_and_file_counts(client, sae_files):
    from gradio_client import handle_file

    good = handle_file(str(sae_files / "good.safetensors"))
    _refused(lambda: _measure(client, sae=[good, handle_file(str(sae_files / "cfg_bad.json"))]),
             "cfg_bad.json", "not utf-8 json")  # fmt: skip
    _refused(lambda: _measure(client, sae=[handle_file(str(sae_files / "cfg_bad.json"))]), "exactly one")
    _refused(lambda: _measure(client, sae=[good, good]), "exactly one")
    _still_serving(client)


def test_sae_upload_over_the_cap_is_refused(client, tmp_path):
    """A file over LIMITS.max_upload_bytes (a sparse file: no disk used) is refused by the upload cap."""
    from gradio_client import handle_file

    from engine.config import LIMITS

    big = tmp_path / "big.safetensors"
    with open(big, "wb") as fh:
        fh.truncate(LIMITS.max_upload_bytes + 1024)
    with pytest.raises(Exception) as e:
        _measure(client, sae=[handle_file(str(big))])
    msg = str(e.value).lower()
    assert any(w in msg for w in ("too large", "cap", "exceeds", "maximum", "413")), msg
    _still_serving(client)


# ------------------------------------------------------------------------------------------ numbers


def _raw(app_url, api: str, data: list) -> str:
    """Call an endpoint over plain HTTP with a JSON body that may hold NaN / Infinity (gradio_client refuses to
    send those; a hostile client can), and return the error event's message (or the result's data)."""
    import urllib.request

    body = json.dumps({"data": data}).encode()  # json.dumps writes float('nan') as NaN
    req = urllib.request.Request(f"{app_url}gradio_api/call/{api}", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    text = urllib.request.urlopen(f"{app_url}gradio_api/call/{api}/{event}", timeout=120).read().decode()
    assert "event: error" in text, text[:300]
    return text.lower()


MEASURE_ARGS = ["smollm2", False, 15, SITE, DEFAULT_SOURCE, "", None, 4, 1.0, 2048, 300, None]


@pytest.mark.parametrize(
    "index, value, words",
    [
        (2, float("nan"), ["layer", "whole number"]),
        (2, float("inf"), ["layer"]),
        (8, float("nan"), ["l1", "nan"]),
        (8, float("inf"), ["greater than maximum value 10", "inf"]),
        (10, float("nan"), ["max_epochs", "nan"]),
    ],
)
def test_nan_and_inf_numbers(app_url, client, index, value, words):
    data = list(MEASURE_ARGS)
    data[index] = value
    msg = _raw(app_url, "superposition_measure", data)
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"layer": 1.5}, ["layer", "whole number"]),
        ({"layer": -1}, ["layer", "[0,"]),
        ({"layer": 1e12}, ["layer"]),
        ({"l1": -0.5}, ["-0.5", "minimum"]),  # the slider's own check (app/controls.py) names value and bound
        ({"expansion": 0}, ["0", "minimum value 1"]),
        ({"max_acts": 300.5}, ["max_activations", "must be int", "300.5"]),
        ({"max_acts": 10**9}, ["maximum value 20000"]),
        ({"max_epochs": 0}, ["minimum value 1"]),
        ({"max_epochs": -3}, ["-3", "minimum"]),
    ],
)
def test_bad_numbers(client, kw, words):
    _refused(lambda: _measure(client, **kw), *words)


def test_bad_numbers_other_views(app_url, client):
    _refused(lambda: client.predict(8, 3, "nan", 300, 1.0, 4, api_name="/superposition_toy"), "sparsit")
    _refused(lambda: client.predict(8, 3, "0.5", 150.5, 1.0, 4, api_name="/superposition_toy"), "steps")
    assert "n_features" in _raw(app_url, "superposition_toy", [float("nan"), 3, "0.5", 300, 1.0, 4])
    args = ["smollm2", 5, SITE, 1.0, 4, "smollm2", 25, SITE, 1.0, 4]
    assert "max_epochs" in _raw(app_url, "superposition_compare", [*args, 2048, float("nan")])
    bad = list(args)
    bad[1] = -2
    _refused(lambda: client.predict(*bad, 2048, 300, api_name="/superposition_compare"), "layer a")
    _still_serving(client)


# ------------------------------------------------------------------------------------------ dropdowns / text


def test_values_outside_the_choices(client):
    # refused by Gradio's choice check or by the handler; either way the message names the bad value
    _refused(lambda: _measure(client, site="the moon"), "the moon")
    _refused(lambda: _measure(client, source="somewhere else"), "somewhere else")
    _refused(
        lambda: client.predict(
            "smollm2", False, "bogus site", "0", 1024, 20, False, api_name="/superposition_scan"
        ),
        "bogus site",
    )
    _still_serving(client)


@pytest.mark.parametrize(
    "spec, words",
    [("../1", ["layers must look like"]), ("0-99999", ["bad layer range"]), ("abc", ["cannot read"])],
)
def test_bad_layer_specs(client, spec, words):
    _refused(lambda: client.predict("smollm2", False, SITE, spec, 1024, 20, False,
                                    api_name="/superposition_scan"), *words)  # fmt: skip


def test_bad_text(client, tmp_path):
    from gradio_client import handle_file

    _refused(lambda: _measure(client, source="Pasted text", text="   "), "empty")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 na\xefve ".encode("latin-1") * 50)
    _refused(lambda: _measure(client, source="Uploaded file", upload=handle_file(str(bad))), "not utf-8")
    zero = tmp_path / "zero.txt"
    zero.write_bytes(b"")
    _refused(lambda: _measure(client, source="Uploaded file", upload=handle_file(str(zero))), "empty")
    gz = tmp_path / "broken.txt.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    _refused(lambda: _measure(client, source="Uploaded file", upload=handle_file(str(gz))), "gz")
    _still_serving(client)


# ------------------------------------------------------------------------------------------ model ids


@pytest.mark.parametrize(
    "model",
    ["../../etc", "/etc/passwd", "http://example.com/model", "a" * 5000, "org/../model", "", "   "],
)
def test_bad_model_ids(client, model):
    msg = _refused(lambda: _measure(client, model=model, layer=3))
    assert "traceback" not in msg and len(msg) < 2000
    assert any(w in msg for w in ("model", "name", "id")), msg


def test_server_still_serves_after_everything(client):
    _still_serving(client)


# ------------------------------------------------------------------------------------------ engine, no app


def test_header_checks_without_the_app(tmp_path):
    from engine.registry import InputError
    from engine.superposition.saelens_io import inspect_sae_file, read_safetensors_header

    p = tmp_path / "sae.safetensors"
    p.write_bytes(_st(GOOD))
    info = inspect_sae_file(p)
    assert info["d_in"] == 576 and info["d_sae"] == 8 and info["file"] == "sae.safetensors"
    with pytest.raises(InputError, match="the upload cap is 100"):
        read_safetensors_header(p, max_bytes=100)  # refused from its size alone, before reading
    p.write_bytes(_st(GOOD, extra=b"\x00" * 8))  # padding after the tensors is harmless
    read_safetensors_header(p)
    raw = bytearray(_st(GOOD))
    hdr = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    hdr["b_enc"]["data_offsets"] = [0, 32]  # overlaps W_enc and is the right length
    h = json.dumps(hdr).encode()
    p.write_bytes(struct.pack("<Q", len(h)) + h + bytes(raw[8 + struct.unpack("<Q", raw[:8])[0] :]))
    with pytest.raises(InputError, match="overlap"):
        read_safetensors_header(p)
    hdr["b_enc"]["data_offsets"] = [0, 16]  # 4 floats claimed for an 8-float tensor
    h = json.dumps(hdr).encode()
    p.write_bytes(struct.pack("<Q", len(h)) + h + bytes(raw[8 + struct.unpack("<Q", raw[:8])[0] :]))
    with pytest.raises(InputError, match="lies"):
        read_safetensors_header(p)
