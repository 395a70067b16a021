"""Gradio's file routes serve only what the app wrote for a user (issue 14, "Files and paths").

Against the launched app: the project tree, the result cache, /etc and traversal tricks are refused; a file the
app itself received (an upload) is served back. Nothing here depends on a tab's wiring.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from engine.config import cache_dir

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _upload(app_url: str, name: str, content: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    req = urllib.request.Request(app_url + "gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())[0]


def _secret_files() -> list[str]:
    entry = cache_dir() / "results" / "file-route-probe" / "secret.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text('{"secret": 1}')
    return ["/etc/passwd", "/etc/hostname", str(ROOT / "README.md"), str(ROOT / "engine" / "config.py"),
            str(ROOT / "pyproject.toml"), str(entry), str(Path.home() / ".bashrc"), "/proc/self/environ"]  # fmt: skip


@pytest.mark.parametrize("form", ["plain", "encoded", "traversal"])
def test_file_route_refuses_files_the_app_did_not_write(app_url, form):
    for path in _secret_files():
        if form == "plain":
            url = f"{app_url}gradio_api/file={path}"
        elif form == "encoded":
            url = f"{app_url}gradio_api/file={urllib.parse.quote(path, safe='')}"
        else:
            import tempfile

            url = f"{app_url}gradio_api/file={tempfile.gettempdir()}/gradio/../../..{path}"
        status, body = _get(url)
        assert status in (400, 403, 404), (url, status, body[:200])
        assert b"root:x:0" not in body and b'"secret": 1' not in body and b"[project]" not in body


def test_an_upload_is_served_back_only_under_its_own_path(app_url):
    path = _upload(app_url, "note.txt", b"hello from one user")
    status, body = _get(f"{app_url}gradio_api/file={path}")
    assert status == 200 and body == b"hello from one user"
    folder = Path(path).parent
    # the folder is named by a salted hash of the content, not by a counter: a neighbour cannot be guessed
    assert len(folder.name) >= 32 and all(c in "0123456789abcdef" for c in folder.name)
    status, _ = _get(f"{app_url}gradio_api/file={folder}/../{folder.name}x/note.txt")
    assert status in (400, 403, 404)
