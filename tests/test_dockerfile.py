"""The Hugging Face Space image, checked statically (issue 14, part 6).

No container engine runs on this machine or in CI (`docker` is only the client), so the Dockerfile is read, not
built: it must install the same pins as the README's set-up (scripts/setup.sh and pyproject.toml), copy every
package the app imports, run as user 1000, turn on the public-deployment rules and serve on port 7860.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETUP = (ROOT / "scripts" / "setup.sh").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()

PIN = re.compile(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9_.\-]*)")


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_same_pins_as_the_readme_setup():
    setup_pins = dict(PIN.findall(SETUP))
    docker_pins = dict(PIN.findall(DOCKERFILE))
    assert setup_pins and setup_pins == docker_pins, (setup_pins, docker_pins)
    project_pins = dict(PIN.findall(PYPROJECT.split("[project.optional-dependencies]")[0]))
    assert project_pins["torch"] == docker_pins["torch"]
    ops = _instructions()
    runs = " ".join(rest for op, rest in ops if op == "RUN")
    assert "pip install --no-cache-dir --user ." in runs  # the project's own pins, from pyproject.toml
    assert re.search(r"FROM python:3\.11", DOCKERFILE) and 'requires-python = ">=3.11"' in PYPROJECT


def test_image_copies_every_package_the_app_imports():
    copied = {src for op, rest in _instructions() if op == "COPY" for src in rest.split()[:-1]
              if not src.startswith("--")}  # fmt: skip
    include = re.search(r"include = \[(.*?)\]", PYPROJECT).group(1)
    packages = {p.strip().strip('"').rstrip("*") for p in include.split(",")}
    assert packages <= copied, packages - copied
    assert "assets" in copied and "pyproject.toml" in copied


def test_runs_as_user_1000_and_serves_on_7860_in_public_mode():
    ops = _instructions()
    assert any(op == "RUN" and "useradd" in rest and "-u 1000" in rest for op, rest in ops)
    users = [rest for op, rest in ops if op == "USER"]
    assert users and users[-1] in ("user", "1000")
    index_user = max(i for i, (op, _) in enumerate(ops) if op == "USER")
    index_cmd = max(i for i, (op, _) in enumerate(ops) if op == "CMD")
    assert index_user < index_cmd  # the server never runs as root
    env = " ".join(rest for op, rest in ops if op == "ENV")
    for setting in ("GRADIO_SERVER_PORT=7860", "GRADIO_SERVER_NAME=0.0.0.0", "REDEX_PUBLIC=1", "HF_HUB_OFFLINE=1",
                    "BROWSER_PATH=/usr/bin/chromium"):  # fmt: skip
        assert setting in env, setting
    assert ("EXPOSE", "7860") in ops
    cmd = next(rest for op, rest in reversed(ops) if op == "CMD")
    assert cmd == '["python", "-m", "app", "--host", "0.0.0.0", "--port", "7860"]'
    assert (ROOT / "app" / "__main__.py").exists()


def test_start_command_parses_to_port_7860():
    """The CMD's arguments go through the app's own parser: it must accept them and bind 0.0.0.0:7860."""
    import app.main as main

    seen = {}

    class Demo:
        def queue(self, **kw):
            seen["queue"] = kw
            return self

        def launch(self, **kw):
            seen["launch"] = kw

    real = main.build_app
    main.build_app = lambda: Demo()
    try:
        main.main(["--host", "0.0.0.0", "--port", "7860", "--no-warmup"])
    finally:
        main.build_app = real
    assert seen["launch"]["server_name"] == "0.0.0.0" and seen["launch"]["server_port"] == 7860
    assert seen["queue"]["max_size"] > 0
