"""Bad input to the 3D Gaussian Pruning tab through the API of a launched app (issue 14, part 3).

Every upload kind (.ply, .splat), number (keep fraction, OMG tau) and dropdown / radio value gets a clear
message naming what is wrong, and the next normal request is served. Uploads are small files written into one
temporary folder; the normal request is a 300-Gaussian upload pruned at random (no importance, under a second).
"""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file

from engine.splats.ply import ply_bytes, write_splat
from tests.test_splats_cli import small_scene

SCENES = ("Demo scene (shipped)", "Upload .ply / .splat")
TAU, KEEP_FRACTION = "tau (score mass)", "keep fraction"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> path of every upload the tests send (written once)."""
    d = tmp_path_factory.mktemp("splat-uploads")
    good = ply_bytes(small_scene())
    n_line = b"element vertex 300"
    nan_scene = small_scene()
    nan_scene.means[7, 1] = np.nan
    point_cloud = (b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                   b"property float z\nend_header\n" + np.zeros(6, "<f4").tobytes())  # fmt: skip
    data = {
        "good.ply": good,
        "good.splat": write_splat(small_scene()),
        "empty.ply": b"",
        "empty.splat": b"",
        "truncated.ply": good[:-100],
        "claims_more.ply": good.replace(n_line, b"element vertex 301", 1),
        "claims_fewer.ply": good.replace(n_line, b"element vertex 200", 1),
        "over_cap.ply": good.replace(n_line, b"element vertex 10000000", 1),
        "no_opacity.ply": good.replace(b"property float opacity\n", b"", 1),
        "point_cloud.ply": point_cloud,
        "ascii.ply": b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n",
        "png_named.ply": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "text_named.ply": "plain text, not a scene: é".encode(),
        "latin1_header.ply": good.replace(b"format", b"comment caf\xe9\nformat", 1),
        "no_end_header.ply": b"ply\nformat binary_little_endian 1.0\n" + b"comment x\n" * 8000,
        "nan.ply": ply_bytes(nan_scene),
        "truncated.splat": write_splat(small_scene())[:-5],
        "ply_named.splat": good,
    }
    paths = {}
    for name, content in data.items():
        (d / name).write_bytes(content)
        paths[name] = str(d / name)
    return paths


def apply(client, upload=None, *, scene=SCENES[1], method="random", keep=0.34, target=TAU, tau=0.96,
          storage="fp32", view="test_000", colour="fate"):  # fmt: skip
    up = handle_file(upload) if upload else None
    return client.predict(
        scene, up, method, keep, target, tau, storage, view, colour, api_name="/splats_apply"
    )


def refused(client, words: str, *args, **kwargs) -> None:
    """The request fails with a message holding ``words`` (case-insensitive), and a normal one succeeds."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as e:
        apply(client, *args, **kwargs)
    assert words.lower() in str(e.value).lower(), str(e.value)


def served(client, files) -> None:
    out = apply(client, files["good.ply"])
    assert "random" in out[1] and "300" in out[1]  # the caption: method and the scene's count


UPLOADS = [
    ("empty.ply", "empty"),
    ("empty.splat", "empty"),
    ("truncated.ply", "truncated"),
    ("claims_more.ply", "truncated"),
    ("claims_fewer.ply", "vertex count is wrong"),
    ("over_cap.ply", "10,000,000 Gaussians (says its header); the cap is"),
    ("no_opacity.ply", "lacks the 3DGS properties"),
    ("point_cloud.ply", "point cloud"),
    ("ascii.ply", "'ascii' is not supported"),
    ("png_named.ply", "not a PLY"),
    ("text_named.ply", "not a PLY"),
    ("latin1_header.ply", "not ASCII"),
    ("no_end_header.ply", "no 'end_header'"),
    ("nan.ply", "NaN/Inf"),
    ("truncated.splat", "multiple of 32"),
    ("ply_named.splat", "rename it to .ply"),
]


def test_bad_uploads_get_clear_messages(client, files):
    refused(client, "choose a .ply or .splat file", None)
    for name, words in UPLOADS:
        refused(client, words, files[name])
    served(client, files)
    out = apply(client, files["good.splat"])
    assert "300" in out[1]


NUMBERS = [
    ({"keep": "nan"}, "keep fraction: parameter 'keep' is NaN"),
    ({"keep": "inf"}, "must be <= 1.0"),
    ({"keep": "-inf"}, "must be >= 0.01"),
    ({"keep": -0.5}, "must be >= 0.01"),
    ({"keep": 5}, "must be <= 1.0"),
    ({"keep": 0}, "must be >= 0.01"),
    ({"keep": None}, "must be float"),
    ({"keep": "a third"}, "must be float"),
    ({"method": "omg", "tau": "nan"}, "OMG τ (score mass kept): parameter 'tau' is NaN"),
    ({"method": "omg", "tau": 0.2}, "must be >= 0.5"),
    ({"method": "omg", "tau": 1.5}, "must be <= 1.0"),
    ({"method": "omg", "target": KEEP_FRACTION, "keep": 2.0}, "must be <= 1.0"),
]


def test_bad_numbers_name_the_control(client, files):
    for kwargs, words in NUMBERS:
        refused(client, words, files["good.ply"], **kwargs)
    out = apply(client, files["good.ply"], keep=0.3337)  # a fraction that is no whole share still works
    assert out[2]["data"][0][2] == "100"  # the metrics table: round(0.3337 x 300) Gaussians kept
    served(client, files)


CHOICES = [
    ({"scene": "../../etc/passwd"}, "not in the list of choices"),
    ({"method": "../engine/splats"}, "not in the list of choices"),
    ({"method": "https://example.com/model"}, "not in the list of choices"),
    ({"method": ""}, "not in the list of choices"),
    ({"storage": "fp64"}, "not in the list of choices"),
    ({"view": "test_099"}, "not in the list of choices"),
    ({"colour": "purple"}, "not in the list of choices"),
    ({"target": "both"}, "not in the list of choices"),
]


def test_values_outside_the_choices(client, files):
    from gradio_client.exceptions import AppError

    for kwargs, words in CHOICES:
        refused(client, words, files["good.ply"], **kwargs)
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(SCENES[1], handle_file(files["good.ply"]), "fp32", "volume", api_name="/splats_pareto")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(SCENES[1], handle_file(files["good.ply"]), "fp128", "bytes", api_name="/splats_pareto")
    served(client, files)
