"""SAELens' on-disk format: ``<dir>/cfg.json`` + ``<dir>/sae_weights.safetensors``, read and written.

Weights are named as SAELens names them: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]`` (and ``threshold [d_sae]`` for JumpReLU); architectures ``standard`` (ReLU), ``jumprelu`` and
``topk`` (``activation_fn_kwargs.k``). Files are read with safetensors only, never unpickled (DESIGN.md).
A tied SAE trained here (:mod:`.sae`) is saved untied, with its input scale folded into the weights, so what
:func:`save_saelens` writes is a plain SAELens SAE.

References
----------
J. Bloom, C. Tigges, A. Duong, D. Chanin. "SAELens", 2024. https://github.com/jbloomAus/SAELens
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

from engine.config import LIMITS
from engine.registry import InputError
from engine.uploads import read_capped

from .sae import SparseAutoencoder

__all__ = ["save_saelens", "load_saelens", "inspect_sae_file", "read_safetensors_header"]

_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}  # float tensors only: an SAE has no other kind
_OTHER_DTYPES = {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
                 "U16": 2, "U32": 4, "U64": 8}  # fmt: skip
MAX_HEADER_BYTES = 1_000_000  # an SAE's header names a handful of tensors: a few hundred bytes
MAX_CFG_BYTES = 1_000_000


def save_saelens(
    sae: SparseAutoencoder, directory: str | Path, *, hook_name: str = "", extra: dict | None = None
):
    """Write ``sae`` as SAELens does (untied tensors, ``cfg.json``); returns the directory."""
    import safetensors.torch

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    s = float(sae.scale)  # fold the input scale in: encode(s x), decode(.) / s
    tensors = {
        "W_enc": (sae.W_enc.detach() * s).cpu().contiguous().float(),
        "b_enc": sae.b_enc.detach().cpu().contiguous().float(),
        "W_dec": (sae.W_dec.detach() / s).cpu().contiguous().float(),
        "b_dec": (sae.b_dec.detach() / s).cpu().contiguous().float(),
    }
    if sae.architecture == "jumprelu":
        tensors["threshold"] = sae.threshold.detach().cpu().contiguous().float()
    safetensors.torch.save_file(tensors, str(d / "sae_weights.safetensors"))
    cfg = {
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "activation_fn_str": "topk" if sae.architecture == "topk" else "relu",
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "hook_name": hook_name,
        "dtype": "float32",
        "tied": sae.tied,
        **(extra or {}),
    }
    if sae.architecture == "topk":
        cfg["activation_fn_kwargs"] = {"k": sae.k}
    (d / "cfg.json").write_text(json.dumps(cfg, indent=2))
    return d


def read_safetensors_header(path: str | Path, *, max_bytes: int | None = None) -> dict[str, dict]:
    """The tensor table of a ``.safetensors`` file, checked against the file before any tensor is read.

    Checks, each with a message naming the problem: the file's size against ``max_bytes`` (default
    ``LIMITS.max_upload_bytes``) before a byte is read; the 8-byte header length against the file (a header
    that claims more than the file holds); the header is a JSON object of ``{name: {dtype, shape,
    data_offsets}}``; every tensor is a float dtype, its offsets lie inside the file and its byte count is
    ``prod(shape) x dtype size`` (a truncated or padded tensor is refused); tensors do not overlap.
    Returns ``{name: {"dtype", "shape", "data_offsets"}}`` without ``__metadata__``.
    """
    cap = LIMITS.max_upload_bytes if max_bytes is None else max_bytes
    name = Path(path).name
    try:
        size = os.path.getsize(path)
    except OSError:
        raise InputError(f"SAE file {name!r} cannot be read (no such file)") from None
    if size > cap:
        raise InputError(f"SAE file {name!r} has {size:,} bytes; the upload cap is {cap:,}")
    if size < 8:
        raise InputError(f"SAE file {name!r} is {'empty' if size == 0 else 'truncated'} ({size} bytes): "
                         "not a safetensors file")  # fmt: skip
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > size - 8:
            raise InputError(f"SAE file {name!r}: its header says {n:,} bytes but the file has only "
                             f"{size - 8:,} after the length field (truncated, or not a safetensors file)")  # fmt: skip
        if n > MAX_HEADER_BYTES:
            raise InputError(f"SAE file {name!r}: a {n:,}-byte header is too long for an SAE "
                             f"(at most {MAX_HEADER_BYTES:,})")  # fmt: skip
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"SAE file {name!r} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"SAE file {name!r}: the safetensors header must be a JSON object")
    header.pop("__metadata__", None)
    data = size - 8 - n
    spans = []
    for key, t in header.items():
        if not isinstance(t, dict) or not {"dtype", "shape", "data_offsets"} <= set(t):
            raise InputError(f"SAE file {name!r}: tensor {key!r} lacks dtype, shape or data_offsets")
        dtype, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in _DTYPES:
            kind = "an integer or other non-float" if dtype in _OTHER_DTYPES else "an unknown"
            raise InputError(f"SAE file {name!r}: tensor {key!r} has {kind} dtype {dtype!r}; SAE weights must "
                             f"be float ({', '.join(_DTYPES)})")  # fmt: skip
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise InputError(f"SAE file {name!r}: tensor {key!r} has a bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            raise InputError(f"SAE file {name!r}: tensor {key!r} has bad data_offsets {offs!r}")
        begin, end = offs
        want = math.prod(shape) * _DTYPES[dtype]
        if not 0 <= begin <= end:
            raise InputError(f"SAE file {name!r}: tensor {key!r} has bad data_offsets {offs!r}")
        if end > data:
            raise InputError(f"SAE file {name!r} is truncated: tensor {key!r} ends at byte {end:,} of the data, "
                             f"but the file holds only {data:,} data bytes")  # fmt: skip
        if end - begin != want:
            raise InputError(f"SAE file {name!r}: tensor {key!r} {dtype} {shape} needs {want:,} bytes but its "
                             f"offsets span {end - begin:,} (the header lies about its size)")  # fmt: skip
        spans.append((begin, end, key))
    spans.sort()
    for (_, e1, k1), (b2, _, k2) in zip(spans, spans[1:]):
        if b2 < e1:
            raise InputError(f"SAE file {name!r}: tensors {k1!r} and {k2!r} overlap in the file")
    return header


def inspect_sae_file(path: str | Path, *, cfg_path: str | Path | None = None) -> dict:
    """Check an SAE upload without reading its tensors: size caps, the safetensors header, the SAELens tensor
    names and their shapes (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc [d_sae]``), and the
    cfg.json (a JSON object within ``MAX_CFG_BYTES``). Returns a description: file names, tensors and shapes,
    ``d_in``, ``d_sae``. Raises :class:`InputError` naming the problem."""
    p = Path(path)
    if p.is_dir():
        cfg_path = cfg_path or (p / "cfg.json" if (p / "cfg.json").exists() else None)
        p = p / "sae_weights.safetensors"
    if p.suffix != ".safetensors":
        raise InputError(f"SAE weights must be a .safetensors file (never a pickle), got {p.name!r}")
    header = read_safetensors_header(p)
    missing = [k for k in ("W_enc", "b_enc", "W_dec") if k not in header]
    if missing:
        raise InputError(f"{p.name!r} lacks the SAELens tensors {missing}; it has {sorted(header)}")
    shp = {k: tuple(t["shape"]) for k, t in header.items()}
    if len(shp["W_enc"]) != 2 or len(shp["W_dec"]) != 2 or len(shp["b_enc"]) != 1:
        raise InputError(
            f"W_enc and W_dec must be matrices and b_enc a vector; got W_enc {list(shp['W_enc'])}, "
            f"W_dec {list(shp['W_dec'])}, b_enc {list(shp['b_enc'])}"
        )
    fin, fsae = shp["W_enc"]
    if shp["W_dec"] != (fsae, fin) or shp["b_enc"] != (fsae,):
        raise InputError(
            f"SAE tensor shapes do not agree: W_enc {list(shp['W_enc'])}, W_dec {list(shp['W_dec'])}, "
            f"b_enc {list(shp['b_enc'])} (expected W_dec [d_sae, d_in] = [{fsae}, {fin}])"
        )
    if fin == 0 or fsae == 0:
        raise InputError(f"the SAE has an empty dimension (d_in {fin}, d_sae {fsae})")
    cfg = _read_cfg(cfg_path) if cfg_path else {}
    return {
        "file": p.name,
        "cfg_file": Path(cfg_path).name if cfg_path else "",
        "bytes": os.path.getsize(p),
        "tensors": {k: [header[k]["dtype"], list(v)] for k, v in sorted(shp.items())},
        "d_in": fin,
        "d_sae": fsae,
        "cfg": cfg,
    }


def _read_cfg(cfg_path: str | Path) -> dict:
    name = Path(cfg_path).name
    raw = read_capped(cfg_path, max_bytes=MAX_CFG_BYTES, what=f"the SAE config {name!r}")
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the SAE config {name!r}: it is not UTF-8 JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"the SAE config {name!r} must be a JSON object")
    return cfg


def load_saelens(path: str | Path, *, cfg_path: str | Path | None = None, d_in: int | None = None):
    """Load an SAE saved in SAELens' format.

    Parameters
    ----------
    path : a directory holding ``sae_weights.safetensors`` (and ``cfg.json``), or a ``.safetensors`` file.
    cfg_path : the ``cfg.json`` when ``path`` is a file and the config lies elsewhere (optional: without a
        config the SAE is read as a standard ReLU SAE that subtracts nothing from its input).
    d_in : the width of the layer the SAE will be applied to; a mismatch raises :class:`InputError`.
    """
    import safetensors
    import safetensors.torch

    p = Path(path)
    if p.is_dir():
        cfg_path = cfg_path or (p / "cfg.json" if (p / "cfg.json").exists() else None)
        p = p / "sae_weights.safetensors"
    if not p.exists():
        raise InputError(f"SAE file {p.name!r} not found")
    info = inspect_sae_file(p, cfg_path=cfg_path)  # caps and header before any tensor is read
    cfg: dict = info.pop("cfg")
    try:
        tensors = safetensors.torch.load_file(str(p), device="cpu")
    except Exception as e:  # noqa: BLE001 - a corrupt upload is a user error
        raise InputError(f"cannot read {p.name!r} as safetensors: {e}") from None
    missing = [k for k in ("W_enc", "b_enc", "W_dec") if k not in tensors]
    if missing:
        raise InputError(f"{p.name!r} lacks the SAELens tensors {missing}; it has {sorted(tensors)}")
    w_enc, w_dec, b_enc = tensors["W_enc"].float(), tensors["W_dec"].float(), tensors["b_enc"].float()
    if w_enc.ndim != 2 or w_dec.ndim != 2 or b_enc.ndim != 1:
        raise InputError("W_enc and W_dec must be matrices and b_enc a vector")
    fin, fsae = w_enc.shape
    if w_dec.shape != (fsae, fin) or b_enc.shape != (fsae,):
        raise InputError(
            f"SAE tensor shapes do not agree: W_enc {tuple(w_enc.shape)}, W_dec {tuple(w_dec.shape)}, "
            f"b_enc {tuple(b_enc.shape)} (expected W_dec [d_sae, d_in] = [{fsae}, {fin}])"
        )
    b_dec = tensors.get("b_dec", torch.zeros(fin)).float()
    if b_dec.shape != (fin,):
        raise InputError(f"b_dec has shape {tuple(b_dec.shape)}, expected ({fin},)")
    for key in ("d_in", "d_sae"):
        want = {"d_in": fin, "d_sae": fsae}[key]
        if key in cfg and int(cfg[key]) != want:
            raise InputError(f"cfg.json says {key}={cfg[key]} but the weights have {key}={want}")
    if d_in is not None and fin != int(d_in):
        raise InputError(
            f"the SAE was trained on width {fin}, but the chosen layer has width {d_in}; pick the matching "
            "model/layer or another SAE"
        )
    norm = cfg.get("normalize_activations", "none") or "none"
    if norm != "none":
        raise InputError(f"SAEs with normalize_activations={norm!r} are not supported (only 'none')")
    arch = cfg.get("architecture", "jumprelu" if "threshold" in tensors else "standard")
    act_fn = cfg.get("activation_fn_str", cfg.get("activation_fn", "relu"))
    if act_fn == "topk":
        arch = "topk"
    k = (cfg.get("activation_fn_kwargs") or {}).get("k") or cfg.get("k")
    if arch == "topk" and not k:
        raise InputError("a top-k SAE needs k in cfg.json (activation_fn_kwargs.k)")
    sae = SparseAutoencoder(
        fin,
        fsae,
        tied=False,
        architecture=arch,
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", False)),
        k=int(k) if k else None,
    )
    with torch.no_grad():
        sae.W_enc_.copy_(w_enc)
        sae.W_dec_.copy_(w_dec)
        sae.b_enc.copy_(b_enc)
        sae.b_dec.copy_(b_dec)
        if arch == "jumprelu":
            thr = tensors.get("threshold")
            if thr is None or thr.shape != (fsae,):
                raise InputError("a JumpReLU SAE needs a 'threshold' tensor of shape (d_sae,)")
            sae.threshold.copy_(thr.float())
    for name, t in sae.state_dict().items():
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"SAE tensor {name} contains NaN or infinite values")
    sae.source_info = {**info, "architecture": arch, "k": sae.k,
                       "apply_b_dec_to_input": sae.apply_b_dec_to_input}  # fmt: skip
    return sae.eval()
