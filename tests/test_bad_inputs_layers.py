"""Bad input to the Layer Redundancy tab, sent through the API as a hostile client would (issue 14, part 3).

Every input kind the tab has: the model id, the text source (pasted text and uploads), the numbers of the
scan, preselect, apply and curve, and the dropdown / checkbox values. Each case must get a clear message
(asserted on its words) and the next normal request must be served. A hostile client is not bound by
gradio_client's JSON encoder, so the module sends NaN/inf and lone surrogates the way raw JSON can.
"""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest

DEFAULT = "Default corpus (Python stdlib docstrings)"
PASTED, UPLOADED = "Pasted text", "Uploaded file"
NAN, INF = float("nan"), float("inf")
CAP_BYTES = 8_000_000  # min(LIMITS.max_upload_bytes, LIMITS.max_text_chars * 4): the text upload cap


@pytest.fixture(scope="module", autouse=True)
def raw_json():
    """Encode request bodies as plain JSON can carry them: NaN, Infinity and lone surrogates (\\ud800)."""
    import httpx._content as content

    def encode_json(obj):
        body = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode()
        return {"Content-Length": str(len(body)), "Content-Type": "application/json"}, content.ByteStream(
            body
        )

    original = content.encode_json
    content.encode_json = encode_json
    yield
    content.encode_json = original


@pytest.fixture(scope="module")
def scanned(client):
    """A small scan in this client's session (the state preselect, apply and curve work from)."""
    out = scan(client)
    assert "2 samples × 64 tokens" in out[0]
    return client


def scan(client, *, model="smollm2", source=DEFAULT, text="", upload=None, samples=2, seq_len=64, head=-1):
    return client.predict(model, False, source, text, upload, samples, seq_len, head, api_name="/layers_scan")


def refused(client, cases, api_name: str) -> None:
    """Each case (message regex, args) fails with its message, each answer proving the server still serves;
    then a normal request is served too."""
    from gradio_client.exceptions import AppError

    wrong = []
    for message, args in cases:
        try:
            client.predict(*args, api_name=api_name)
            wrong.append((args[:8], "no error"))
        except AppError as e:
            if not re.search(message, str(e)):
                wrong.append((message, str(e)[:300]))
    assert not wrong
    attn, mlp, block = client.predict("attn-drop", 3, False, 42, api_name="/layers_preselect")
    assert len(attn) == 3 and mlp == block == []


def scan_args(model="smollm2", source=DEFAULT, text="", upload=None, samples=2, seq_len=64, head=-1):
    return (model, False, source, text, upload, samples, seq_len, head)


def test_model_id(scanned):
    cases = [
        ("no model given", ""),
        ("no model given", "   "),
        ("no model given", None),
        (
            "cannot load model '/etc'",
            "/etc",
        ),  # a folder, but no model in it (public deployments refuse paths)
        ("unknown model '/no/such/folder'", "/no/such/folder"),
        ("unknown model '../../etc/passwd'", "../../etc/passwd"),
        ("unknown model 'smollm2/../minilm'", "smollm2/../minilm"),
        ("unknown model 'https://huggingface.co/gpt2'", "https://huggingface.co/gpt2"),
        ("unknown model 'file:///etc/passwd'", "file:///etc/passwd"),
        ("the model name has 5,000 characters; a hub id has at most 200", "a" * 5000),
        ("network access is off", "nobody/nothing"),
    ]
    refused(scanned, [(m, scan_args(model=v)) for m, v in cases], "/layers_scan")


def test_text_source_and_pasted_text(scanned):
    cases = [
        ("text box is empty", ""),
        ("text box is empty", " \n\t "),
        ("fewer than 2 samples", "short text"),
        ("NUL bytes", "abc\x00def " * 100),
        ("not valid Unicode", "abc \ud800 def " * 100),
        ("2,000,001 characters; the cap is 2,000,000", "x" * 2_000_001),
    ]
    refused(
        scanned,
        [(m, scan_args(source=PASTED, text=v)) for m, v in cases]
        + [("not in the list of choices", scan_args(source="../../etc/passwd"))],
        "/layers_scan",
    )


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    d = tmp_path_factory.mktemp("layers_uploads")
    bomb = gzip.compress(b"a" * (CAP_BYTES + 1_000_000))
    rng = random.Random(0)
    words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma"]) for _ in range(40_000))
    packed = gzip.compress(words.encode())
    files = {
        "empty.txt": b"",
        "latin1.txt": "café crème brûlée, ".encode("latin-1") * 200,
        "binary.txt": bytes(range(256)) * 64,
        "junk.gz": bytes(range(1, 256)) * 64,  # no gzip magic, and not text either
        "corrupt.gz": b"\x1f\x8b\x08\x00" + b"\xff" * 200,
        "truncated.gz": packed[: len(packed) // 2],
        "bomb.gz": bomb,
        # gzip's ISIZE trailer claims 100 bytes: the reader counts what it inflates, not what the header says
        "lying.gz": bomb[:-4] + (100).to_bytes(4, "little"),
        "huge.txt": b"word " * (CAP_BYTES // 5) + b"x",
        "many_chars.txt": b"y" * 2_000_001,
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def test_uploaded_file(scanned, uploads):
    from gradio_client import handle_file

    cases = [
        ("no file uploaded", None),
        ("is empty", "empty.txt"),
        ("not UTF-8 text", "latin1.txt"),
        ("looks binary", "binary.txt"),
        ("not UTF-8 text", "junk.gz"),
        ("looks gzipped but is corrupt", "corrupt.gz"),
        ("truncated .gz file", "truncated.gz"),
        ("decompresses to more than 8,000,000 bytes", "bomb.gz"),
        ("decompresses to more than 8,000,000 bytes", "lying.gz"),
        ("has 8,000,001 bytes; the cap is 8,000,000", "huge.txt"),
        ("2,000,001 characters; the cap is 2,000,000", "many_chars.txt"),
    ]
    args = [
        (m, scan_args(source=UPLOADED, upload=None if f is None else handle_file(str(uploads / f))))
        for m, f in cases
    ]
    refused(scanned, args, "/layers_scan")


def test_scan_numbers(scanned):
    cases = [
        ("'samples' must be int, got nan", {"samples": NAN}),
        ("greater than maximum value 256", {"samples": INF}),
        ("less than minimum value 1", {"samples": -1}),
        ("'samples' must be int, got 2.5", {"samples": 2.5}),
        ("less than minimum value 8", {"seq_len": -INF}),
        ("'seq_len' must be int, got 64.5", {"seq_len": 64.5}),
        ("greater than maximum value 2048", {"seq_len": 5000}),
        ("'head_layer' must be int, got nan", {"head": NAN}),
        ("'head_layer' must be int, got 1.5", {"head": 1.5}),
        ("head layer 99 is out of range for a model with 30 layers", {"head": 99}),
        ("slider", {"samples": "abc"}),  # Gradio names the component it could not read
    ]
    refused(scanned, [(m, scan_args(**kw)) for m, kw in cases], "/layers_scan")


def test_preselect_inputs(scanned):
    cases = [
        ("not in the list of choices", ("nope-drop", 3, False, 42)),
        ("not in the list of choices", ("layer-similarity", 3, False, 42)),
        ("'n' must be int, got nan", ("attn-drop", NAN, False, 42)),
        ("less than minimum value 0", ("attn-drop", -1, False, 42)),
        ("'n' must be int, got 2.5", ("attn-drop", 2.5, False, 42)),
        ("between 0 and 30 attn sublayers of this model, not 31", ("attn-drop", 31, False, 42)),
        ("less than minimum value 0", ("random-drop", 2, False, -1)),
        ("number", ("random-drop", 2, False, INF)),
    ]
    refused(scanned, cases, "/layers_preselect")
    # the seed box is a whole-number field: Gradio rounds a fraction to the nearest seed (as the UI does)
    assert scanned.predict("random-drop", 2, False, 1.6, api_name="/layers_preselect") == scanned.predict(
        "random-drop", 2, False, 2, api_name="/layers_preselect"
    )


def test_apply_inputs(scanned):
    cases = [
        ("not in the list of choices", ([99], "hi", 2)),
        ("not in the list of choices", (["x"], "hi", 2)),
        ("pick at least one layer", ([], "hi", 2)),
        ("'max_new_tokens' must be int, got nan", ([3], "hi", NAN)),
        ("less than minimum value 1", ([3], "hi", 0)),
        ("'max_new_tokens' must be int, got 2.5", ([3], "hi", 2.5)),
        ("greater than maximum value 64", ([3], "hi", 65)),
        ("the prompt is over 2,000 characters", ([3], "p" * 2001, 2)),
        ("the prompt is not valid Unicode", ([3], "hi \udc80 there", 2)),
    ]
    refused(scanned, [(m, (a, [], [], p, t)) for m, (a, p, t) in cases], "/layers_apply")


def test_curve_inputs(scanned):
    cases = [
        ("not in the list of choices", (["nope"], 2, 2, 1)),
        ("pick at least one strategy", ([], 2, 2, 1)),
        ("less than minimum value 1", (["attn"], 0, 1, 1)),
        ("max dropped <= 30", (["attn"], 31, 1, 1)),
        ("step <= max dropped", (["attn"], 2, 3, 1)),
        ("'step' must be int, got nan", (["attn"], 2, NAN, 1)),
        ("'max_n' must be int, got 2.5", (["attn"], 2.5, 1, 1)),
        ("greater than maximum value 5", (["attn"], 2, 2, 6)),
        ("greater than maximum value 5", (["attn"], 2, 2, INF)),
    ]
    refused(scanned, cases, "/layers_curve")
