"""Size caps and defaults in one place (DESIGN.md: "cap sizes in one config place").

Every boundary (app handlers, CLI, engine entry points) checks against these numbers, so raising a cap for
a bigger machine is a one-line change. Values can be overridden with environment variables of the same name
prefixed by ``REDEX_`` (for example ``REDEX_MAX_TEXT_CHARS=5000000``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["Limits", "LIMITS", "cache_dir", "allow_network", "public_deployment"]


@dataclass(frozen=True)
class Limits:
    # text
    max_text_chars: int = 2_000_000  # pasted or uploaded text, characters
    max_upload_bytes: int = 50_000_000  # any uploaded file
    # layer scans (LLM-Drop)
    min_samples: int = 1
    max_samples: int = 256  # calibration windows per scan
    min_seq_len: int = 8
    max_seq_len: int = 2048  # tokens per window
    max_scan_tokens: int = 256 * 2048  # samples x seq_len
    max_eval_tokens: int = 16_384  # held-out tokens for perplexity
    max_new_tokens: int = 64  # generation sample length
    # graphs
    max_graph_edges: int = 2_000_000
    max_drawn_elements: int = 3_000
    # 3D Gaussians
    max_gaussians: int = 3_000_000
    # images
    max_image_pixels: int = 40_000_000  # refuse larger (decompression bombs); Pillow's own default is 89 M
    min_image_side: int = 8  # pixels: under one patch of the scene models
    max_image_side: int = 2048  # pixels: larger images are downscaled on load, with a notice
    # serving
    max_queue: int = 64  # requests waiting in the app's queue; more are refused at once with a message
    workers: int = 8  # events of one kind served at once (cheap work: drawing, cached results, small inputs)
    # heavy jobs (training, full scans, renders, big graphs) running at once: half the cores, so cheap work
    # keeps a core (on the 2-core Space: one heavy job, on one torch thread, and one core for everyone else)
    heavy_workers: int = max(1, (os.cpu_count() or 2) // 2)
    heavy_threads: int = max(1, ((os.cpu_count() or 2) - 1) // max(1, (os.cpu_count() or 2) // 2))  # torch
    # threads of a heavy job
    heavy_wait_s: float = 120.0  # a heavy job waits this long for a slot, then gets "busy, try again"
    request_time_s: float = 600.0  # a job running longer is stopped with a message (0 = no limit)
    max_request_bytes: int = 8_000_000_000  # memory one request may plan to use
    memory_reserve_bytes: int = 1_000_000_000  # kept free for everyone else
    result_cache_bytes: int = 512_000_000  # in-memory result caches, all namespaces together
    model_cache_bytes: int = 4_000_000_000  # loaded models kept in memory
    # model names
    max_model_name_chars: int = 200  # hub ids are at most 96 + 1 + 96 characters


def _from_env() -> Limits:
    values = {}
    for f in fields(Limits):
        raw = os.environ.get("REDEX_" + f.name.upper())
        if raw is not None:
            values[f.name] = type(f.default)(raw)
    return Limits(**values)


LIMITS = _from_env()


def cache_dir() -> Path:
    """Directory for on-disk caches (converted weights, cached results). ``REDEX_CACHE_DIR`` overrides."""
    path = Path(os.environ.get("REDEX_CACHE_DIR", Path.home() / ".cache" / "redex"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def allow_network() -> bool:
    """Hub downloads are off unless the user opts in (``REDEX_ALLOW_NETWORK=1``) or passes it per request."""
    return os.environ.get("REDEX_ALLOW_NETWORK", "0").lower() in {"1", "true", "yes"}


def public_deployment() -> bool:
    """True on a public deployment (the Dockerfile sets ``REDEX_PUBLIC=1``): the server's own file system is
    then off limits to model fields, so no answer tells a visitor which server folders exist."""
    return os.environ.get("REDEX_PUBLIC", "0").lower() in {"1", "true", "yes"}
