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
from pathlib import Path

import torch

from engine.registry import InputError

from .sae import SparseAutoencoder

__all__ = ["save_saelens", "load_saelens"]


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
        raise InputError(f"SAE file {p} not found")
    if p.suffix != ".safetensors":
        raise InputError(f"SAE weights must be a .safetensors file (never a pickle), got {p.name!r}")
    cfg: dict = {}
    if cfg_path is not None:
        try:
            cfg = json.loads(Path(cfg_path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read the SAE config {Path(cfg_path).name!r}: {e}") from None
        if not isinstance(cfg, dict):
            raise InputError("the SAE config must be a JSON object")
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
    return sae.eval()
