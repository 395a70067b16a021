"""`redex sae`: effective features of a model layer, of every layer, or of toy models with known ground truth.

``--method`` takes the superposition family's registered methods (``--toy`` is short for the toy-model one);
each runs by its role (``measure``: one layer, ``scan``: many layers, ``toy``: a toy-model sweep), and its
parameters are checked by its registry entry. The printed JSON is the engine result's own ``to_dict()``.

Examples::

    redex sae --model smollm2 --layer 12 --json
    redex sae --method sae-layer-scan --model smollm2 --layers 0-5 --json
    redex sae --toy --features 20 --neurons 5 --sparsity 0.9 --json
"""

from __future__ import annotations

import argparse

from app.commands import method_flag, tqdm_progress

NAME = "sae"
HELP = "Count effective features F = exp(H) with a sparse autoencoder (Bereska et al. 2025), psi = F / N."
FAMILY = "superposition"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.superposition.activations import SITES

    method_flag(p, FAMILY, default=_by_role("measure"), help="registered superposition method")
    p.add_argument("--model", default="smollm2", help="built-in (smollm2, minilm), a directory, or a hub id")
    p.add_argument("--layer", type=int, default=None, help="block index, 0-based (one-layer measurement)")
    p.add_argument("--layers", default="all", help="layer scan: 'all', '0-29' or '0, 5, 10'")
    p.add_argument("--site", default="resid", choices=list(SITES))
    p.add_argument(
        "--text-file", default=None, help="text to capture activations on (default: built-in corpus)"
    )
    p.add_argument(
        "--sae", default=None, help="pretrained SAE in SAELens format: a directory or .safetensors"
    )
    p.add_argument("--sae-cfg", default=None, help="its cfg.json when --sae is a file")
    p.add_argument("--expansion", type=float, default=None, help="dictionary size / width (paper: 4; toy: 8)")
    p.add_argument("--l1", type=float, default=None, help="L1 coefficient (paper: 0.1; toy default: 2.0)")
    p.add_argument("--max-activations", type=int, default=None, help="activations to train on (paper: 10k)")
    p.add_argument(
        "--max-epochs", type=int, default=None, help="epoch cap (early stopping usually ends sooner)"
    )
    p.add_argument("--min-delta", type=float, default=None, help="relative improvement that resets patience")
    p.add_argument("--no-sweep", action="store_true", help="layer scan: skip the sensitivity-sweep SAEs")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true", help="measure toy models of superposition instead")
    p.add_argument("--features", type=int, default=None, help="toy: sparse input features n")
    p.add_argument("--neurons", type=int, default=None, help="toy: hidden neurons m < n")
    p.add_argument(
        "--sparsity", type=float, nargs="+", default=[0.9], help="toy: one or more sparsity levels in [0, 1)"
    )
    p.add_argument("--steps", type=int, default=None, help="toy: training steps")


def _by_role(role: str) -> str:
    from engine.registry import by_family

    found = by_family(FAMILY, role=role)
    return found[0].name if found else ""


def _given(**flags):
    """The flags the user gave (None = not given: the method's registered default applies)."""
    return {k: v for k, v in flags.items() if v is not None}


def _text(path: str | None) -> str | None:
    if not path:
        return None
    from engine.corpus import check_text

    with open(path, encoding="utf-8", errors="replace") as fh:
        return check_text(fh.read())


def run(args: argparse.Namespace):
    from engine.registry import InputError, get

    method = get(_by_role("toy") if args.toy else args.method, family=FAMILY)
    progress = None if args.json else tqdm_progress()
    if method.role == "toy":
        from engine.superposition.toy import ToyReport

        res = method(
            args.sparsity,
            seed=args.seed,
            progress=progress,
            **_given(n_features=args.features, n_hidden=args.neurons, steps=args.steps,
                     sae_expansion=args.expansion, sae_l1=args.l1, sae_max_epochs=args.max_epochs),
        )  # fmt: skip
        return ToyReport.from_sweep(res)
    sae = _given(expansion=args.expansion, l1=args.l1, max_activations=args.max_activations,
                 max_epochs=args.max_epochs, min_delta=args.min_delta)  # fmt: skip
    common = dict(site=args.site, text=_text(args.text_file), seq_len=args.seq_len, seed=args.seed,
                  allow_network=args.allow_network, progress=progress)  # fmt: skip
    if method.role == "scan":
        return method(args.model, args.layers, **common, **sae, **({"sweep": False} if args.no_sweep else {}))
    if method.role != "measure":
        raise InputError(f"redex sae cannot run {method.name!r} (role {method.role!r})")
    if args.layer is None:
        raise InputError("give --layer L (0-based), or --toy")
    return method(args.model, args.layer, sae_path=args.sae, sae_cfg_path=args.sae_cfg, **common, **sae)


def render(out: dict) -> str:
    """The scalar fields, one a line (lists such as the per-feature p are in the --json output)."""
    lines = [f"{k:>20}: {v}" for k, v in out.items() if not isinstance(v, list | dict)]
    prov = out.get("provenance") or {}
    lines += [
        f"{'backend':>20}: {prov.get('backend')}",
        f"{'seconds':>20}: {prov.get('timings', {}).get('total')}",
    ]
    return "\n".join(lines)
