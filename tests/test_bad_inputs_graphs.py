"""Bad input to the Graph Summaries tab through the launched app (``client`` fixture), as an API caller sends it.

Every case must get a clear message (the assertions name its words) and the next normal request must succeed.
Input kinds: the edge-list upload, the generator's numbers, the method's numbers and seeds, the dropdowns
(built-in graph, generator, method, error, source). NaN and infinity cannot be sent by gradio_client (its JSON
refuses them), so those go as raw JSON to the same endpoint, as a hand-written client would send them.
Also here: a request leaves no ``redex-graphs-*`` folder behind in the temp directory, only its downloads.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import zlib
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file

from engine.config import LIMITS
from engine.graphs.io import max_text_bytes

SOURCES = ("Built-in graph", "Generator", "Upload edge list")
#         source      built-in  gen    edges gseed upload method  budget error iters hashes seed
DEFAULTS = [SOURCES[0], "karate", "rmat", 2000, 0, None, "ssumm", 0.3, "l2", 20, 10, 0]
FIELDS = ["source", "builtin", "generator", "edges", "graph_seed", "upload", "method", "budget", "error",
          "iterations", "hashes", "seed"]  # fmt: skip


def _args(**kw) -> list:
    args = list(DEFAULTS)
    for k, v in kw.items():
        args[FIELDS.index(k)] = v
    return args


def _summarize(client, **kw):
    return client.predict(*_args(**kw), api_name="/graph_summarize")


def _upload(client, path: Path, **kw):
    return _summarize(client, source=SOURCES[2], upload=handle_file(str(path)), **kw)


def _still_serving(client) -> None:
    _, _, metrics, cap, _ = _summarize(client, budget=0.5)
    rows = metrics["data"] if isinstance(metrics, dict) else metrics
    assert rows[0][0] == "ssumm" and "karate" in cap


def _refused(call, *words: str) -> str:
    with pytest.raises(Exception) as info:
        call()
    text = str(info.value)
    for w in words:
        assert w.lower() in text.lower(), f"{w!r} not in the message: {text}"
    return text


def _raw(app_url: str, api: str, data: list) -> str:
    """POST ``data`` as JSON (NaN and Infinity literals allowed) and return the event stream's text."""
    url = f"{app_url.rstrip('/')}/gradio_api/call/{api}"
    r = httpx.post(url, content=json.dumps({"data": data}), headers={"content-type": "application/json"})
    r.raise_for_status()
    with httpx.stream("GET", f"{url}/{r.json()['event_id']}", timeout=120) as s:
        return "".join(s.iter_text())


# ------------------------------------------------------------------------------------------ uploads


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every bad upload, written once."""
    d = tmp_path_factory.mktemp("bad_graphs")
    out = {}

    def put(name, data: bytes):
        (d / name).write_bytes(data)
        out[name.split(".")[0]] = d / name

    good = "".join(f"{i} {(i * 7 + 1) % 40}\n" for i in range(40)).encode()
    put("zero.txt", b"")
    put("blank.txt", b"\n   \n\t\n")
    put("comments.txt", b"# u v\n% nothing else\n")
    put("junk.txt", bytes(range(256)) * 40)
    put("nul.csv", b"0 1\n1 2\x00\x00\x00\n2 0\n")
    put("truncated.gz", gzip.compress(good)[:-12])
    put("corrupt.gz", b"\x1f\x8b\x08\x00" + b"not really deflate data" * 20)
    lying = bytearray(gzip.compress(good))
    lying[-4:] = (2**32 - 1).to_bytes(4, "little")  # the gzip size field claims 4 GB
    put("lying.gz", bytes(lying))
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk, want = b"0 1\n" * 262_144, max_text_bytes() + 1
    bomb = b"".join(comp.compress(chunk) for _ in range(want // len(chunk) + 1)) + comp.flush()
    put("bomb.gz", bomb)  # ~100 KB that inflates past the cap
    lines = 2 * LIMITS.max_graph_edges + 11  # more edge lines than the edge cap allows, as a small .gz
    put("overcap.gz", gzip.compress(b"0 1\n" * lines, 6))
    put("nan_ids.txt", b"0 1\n1 2\n2 nan\n3 0\n")
    put("inf_ids.csv", b"0,1\n1,inf\n2,3\n3,0\n")
    put("names.txt", b"alice bob\nbob carol\ncarol dave\ndave alice\n")
    put("negative.txt", b"-1 2\n2 3\n3 -4\n-4 -1\n")
    put("fraction.txt", b"0.5 1\n1 2.25\n2.25 3\n3 0.5\n")
    put("loops.txt", b"0 0\n1 1\n0 1\n1 2\n2 0\n2 2\n")
    put("only_loops.txt", b"0 0\n1 1\n2 2\n")
    put("one_column.txt", b"1\n2\n3\n4\n")
    put("five_columns.txt", b"1 2 3 4 5\n2 3 4 5 6\n")
    put("latin1.txt", "café bob\nbob zoë\nzoë café\n".encode("latin-1"))
    put(
        "matrix_market.txt",
        b"%%MatrixMarket matrix coordinate pattern general\n5 5 1000000000\n1 2\n2 3\n3 1\n",
    )
    put("json.txt", json.dumps({"edges": [[0, 1], [1, 2]]}).encode())
    return out


@pytest.mark.parametrize(
    "name, words",
    [
        ("zero", ["empty"]),
        ("blank", ["empty"]),
        ("comments", ["no edges"]),
        ("junk", ["binary"]),
        ("nul", ["binary"]),
        ("truncated", ["truncated .gz"]),
        ("corrupt", ["gzipped but is corrupt"]),
        ("lying", ["gzipped but is corrupt", "length"]),
        ("bomb", ["decompresses to more than", "cap"]),
        ("overcap", ["lines is over the cap", "edges"]),
        ("nan_ids", ["nan", "NaN or infinity", "edge"]),
        ("inf_ids", ["inf", "NaN or infinity"]),
        ("only_loops", ["after cleaning", "at least 3 nodes and 2 edges"]),
        ("one_column", ["two node ids"]),
        ("five_columns", ["2 or 3 columns"]),
        ("json", ["2 or 3 columns"]),
    ],
)
def test_bad_upload_is_refused_clearly(client, files, name, words):
    _refused(lambda: _upload(client, files[name]), *words)
    _still_serving(client)


@pytest.mark.parametrize(
    "name, words",
    [
        ("names", ["non-integer or negative node ids mapped"]),
        ("negative", ["non-integer or negative node ids mapped"]),
        ("fraction", ["non-integer or negative node ids mapped"]),
        ("loops", ["3 self-loop(s) removed"]),
        ("latin1", ["not UTF-8", "Latin-1"]),
        ("matrix_market", ["Matrix Market size line '5 5 1000000000' skipped"]),
    ],
)
def test_odd_upload_is_read_and_says_what_changed(client, files, name, words):
    _, _, metrics, cap, _ = _upload(client, files[name], budget=0.9)
    assert "Input notes" in cap
    for w in words:
        assert w in cap, cap
    _still_serving(client)


def test_upload_over_the_size_cap_is_refused_before_reading(client, tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:  # sparse: no disk or memory spent here
        fh.truncate(LIMITS.max_upload_bytes + 1)
    _refused(lambda: _upload(client, big), "exceeds the maximum file size of 50000000 bytes")
    _still_serving(client)


def test_upload_of_a_wrong_type_or_a_server_path_is_refused(client, app_url, tmp_path):
    exe = tmp_path / "graph.exe"
    exe.write_bytes(b"0 1\n1 2\n2 0\n")
    _refused(lambda: _upload(client, exe), "file type")
    for path in ("/etc/passwd", "../../../../etc/passwd", str(Path(__file__))):
        stream = _raw(app_url, "graph_summarize",
                      _args(source=SOURCES[2], upload={"path": path, "meta": {"_type": "gradio.FileData"}}))  # fmt: skip
        assert "event: error" in stream and "root" not in stream  # nothing of the file comes back
        assert "not uploaded by a user" in stream, stream
    _refused(lambda: _summarize(client, source=SOURCES[2]), "no file was uploaded")
    _still_serving(client)


# -------------------------------------------------------------------------------------------- numbers


GEN = {"source": SOURCES[1]}


@pytest.mark.parametrize(
    "kw, words",
    [
        ({**GEN, "edges": -5}, ["less than minimum value 10"]),
        ({**GEN, "edges": 0}, ["less than minimum value 10"]),
        ({**GEN, "edges": 2000.5}, ["edge count must be a whole number", "2000.5"]),
        ({**GEN, "edges": 10**9}, ["takes 10 to 2,000,000 edges"]),
        ({**GEN, "edges": 100_000, "generator": "lfr"}, ["'lfr' takes 10 to 25,000 edges"]),
        ({**GEN, "graph_seed": -1}, ["less than minimum value 0"]),
        ({**GEN, "graph_seed": 0.5}, ["graph seed must be a whole number"]),
        ({**GEN, "graph_seed": 2**40}, ["graph seed must be in [0, 4294967295]"]),
        ({"budget": -0.1}, ["less than minimum value 0.01"]),
        ({"budget": 1.5}, ["greater than maximum value 1"]),
        ({"iterations": 2.5}, ["iterations", "2.5"]),
        ({"hashes": 0}, ["less than minimum value 1"]),
        ({"seed": -3}, ["less than minimum value 0"]),
        ({"seed": 1.5}, ["seed must be a whole number"]),
        ({"seed": 2**40}, ["seed must be in [0, 4294967295]"]),
    ],
)
def test_bad_numbers(client, kw, words):
    """The generator's numbers (edges, graph seed) and the method's (budget, T, hashes, seed)."""
    _refused(lambda: _summarize(client, **kw), *words)
    _still_serving(client)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("edges", float("nan"), ["edge count must be a whole number", "nan"]),
        ("edges", float("inf"), ["edge count must be a whole number", "inf"]),
        ("graph_seed", float("nan"), ["graph seed must be a whole number"]),
        ("seed", float("nan"), ["seed must be a whole number"]),
        ("budget", float("nan"), ["budget", "nan"]),
        ("budget", float("inf"), ["greater than maximum value 1", "inf"]),
        ("iterations", float("nan"), ["iterations", "nan"]),
        ("hashes", float("-inf"), ["less than minimum value 1", "-inf"]),
    ],
)
def test_nan_and_infinity_sent_as_raw_json(client, app_url, field, value, words):
    source = SOURCES[1] if field in ("edges", "graph_seed") else SOURCES[0]
    stream = _raw(app_url, "graph_summarize", _args(source=source, **{field: value}))
    assert "event: error" in stream
    for w in words:
        assert w.lower() in stream.lower(), stream
    _still_serving(client)


def test_bad_compare_settings(client, app_url):
    compare = lambda *a: client.predict(*a, api_name="/graph_compare")  # noqa: E731
    base = [SOURCES[0], "karate", "rmat", 2000, 0, None]
    _refused(lambda: compare(*base, "l3", 0), "not in the list of choices")
    _refused(lambda: compare(*base, "l2", -1), "less than minimum value 0")
    _refused(lambda: compare(*base, "l2", 0.5), "'seed' must be int")
    stream = _raw(app_url, "graph_compare", [*base, "l2", float("nan")])
    assert "event: error" in stream and "'seed' must be int" in stream, stream
    _still_serving(client)


# -------------------------------------------------------------------------------------------- dropdowns


@pytest.mark.parametrize(
    "kw",
    [
        {"source": "Pasted text"},
        {"builtin": "../../etc/passwd"},
        {"builtin": "https://example.com/graph.txt"},
        {"builtin": "/etc/passwd"},
        {"source": SOURCES[1], "generator": "erdos"},
        {"source": SOURCES[1], "generator": "../rmat"},
        {"method": "nope"},
        {"method": "engine.graphs.ssumm"},
        {"error": "l3"},
    ],
)
def test_value_outside_a_dropdown(client, kw):
    _refused(lambda: _summarize(client, **kw), "not in the list of choices")
    _still_serving(client)


# -------------------------------------------------------------------------------------------- temp folders


def test_requests_leave_no_temp_folder_behind(client):
    """Downloads are moved into Gradio's cache (which delete_cache empties); nothing stays in the temp dir."""
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("redex-graphs-*"))
    _, _, _, _, downloads = _summarize(client, builtin="florentine_families", budget=0.45, seed=9)
    _, _, _, cmp_downloads = client.predict(
        SOURCES[0], "florentine_families", "rmat", 2000, 0, None, "l1", 9, api_name="/graph_compare"
    )
    assert set(tmp.glob("redex-graphs-*")) - before == set()
    names = {Path(f if isinstance(f, str) else f["path"]).name for f in [*downloads, *cmp_downloads]}
    assert any(n.endswith("_summary.json") for n in names) and any(
        n.endswith("_comparison.csv") for n in names
    )
    from gradio.utils import get_upload_folder

    served = {p.name for p in Path(get_upload_folder()).glob("redex-graphs-*/*")}
    assert names <= served  # the downloads themselves are there, in the folder delete_cache cleans
