"""`redex sae`: effective features of a model layer, or of toy models with known ground truth.

Examples::

    redex sae --model smollm2 --layer 12 --json
    redex sae --toy --features 20 --neurons 5 --sparsity 0.9 --json
"""

from __future__ import annotations

import argparse
import sys

NAME = "sae"
HELP = "Count effective features F = exp(H) with a sparse autoencoder (Bereska et al. 2025), psi = F / N."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="built-in (smollm2, minilm), a directory, or a hub id")
    p.add_argument("--layer", type=int, default=None, help="block index, 0-based")
    p.add_argument("--site", default="resid", choices=["resid", "mlp_out", "attn_out"])
    p.add_argument(
        "--text-file", default=None, help="text to capture activations on (default: built-in corpus)"
    )
    p.add_argument(
        "--sae", default=None, help="pretrained SAE in SAELens format: a directory or .safetensors"
    )
    p.add_argument("--sae-cfg", default=None, help="its cfg.json when --sae is a file")
    p.add_argument("--expansion", type=float, default=None, help="dictionary size / width (paper: 4; toy: 8)")
    p.add_argument("--l1", type=float, default=None, help="L1 coefficient (paper: 0.1; toy default: 2.0)")
    p.add_argument("--max-activations", type=int, default=10_000, help="activations to train on (paper: 10k)")
    p.add_argument(
        "--max-epochs", type=int, default=300, help="epoch cap (early stopping usually ends sooner)"
    )
    p.add_argument("--min-delta", type=float, default=1e-3, help="relative improvement that resets patience")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true", help="measure a toy model of superposition instead")
    p.add_argument("--features", type=int, default=20, help="toy: sparse input features n")
    p.add_argument("--neurons", type=int, default=5, help="toy: hidden neurons m < n")
    p.add_argument(
        "--sparsity", type=float, nargs="+", default=[0.9], help="toy: one or more sparsity levels in [0, 1)"
    )
    p.add_argument("--steps", type=int, default=3000, help="toy: training steps")


def run(args: argparse.Namespace) -> dict:
    from engine.registry import InputError

    if args.toy:
        from engine.superposition.toy import toy_sweep

        r = toy_sweep(
            args.sparsity,
            n_features=args.features,
            n_hidden=args.neurons,
            steps=args.steps,
            sae_expansion=8.0 if args.expansion is None else args.expansion,
            sae_l1=2.0 if args.l1 is None else args.l1,
            seed=args.seed,
        )
        one = len(r.sparsities) == 1
        out = {
            "effective_features": r.effective_features[0] if one else r.effective_features,
            "true_features": r.true_features[0] if one else r.true_features,
            "neurons": r.n_hidden,
            "features": r.n_features,
            "sparsity": r.sparsities[0] if one else r.sparsities,
            "psi": r.psi[0] if one else r.psi,
            "rule": r.rule,
            "seconds": r.provenance.timings.get("total"),
        }
        if not one:
            out["pearson_r"] = r.pearson_r
        return out
    if args.layer is None:
        raise InputError("give --layer L (0-based), or --toy")
    from engine.superposition.measure import measure_layer

    text = None
    if args.text_file:
        from engine.corpus import check_text

        with open(args.text_file, encoding="utf-8", errors="replace") as fh:
            text = check_text(fh.read())

    def progress(frac, msg):
        if not args.json:
            print(f"\r{msg:60s}", end="", file=sys.stderr, flush=True)

    r = measure_layer(
        args.model,
        args.layer,
        site=args.site,
        text=text,
        seq_len=args.seq_len,
        sae_path=args.sae,
        sae_cfg_path=args.sae_cfg,
        allow_network=args.allow_network,
        seed=args.seed,
        progress=progress,
        expansion=4.0 if args.expansion is None else args.expansion,
        l1=0.1 if args.l1 is None else args.l1,
        max_activations=args.max_activations,
        max_epochs=args.max_epochs,
        min_delta=args.min_delta,
    )
    if not args.json:
        print(file=sys.stderr)
    return {
        "effective_features": r.effective_features,
        "neurons": r.neurons,
        "psi": r.psi,
        "l0": r.l0,
        "explained_variance": r.explained_variance,
        "dead_fraction": r.dead_fraction,
        "dense_fraction": r.dense_fraction,
        "mse": r.mse,
        "entropy": r.entropy,
        "d_sae": r.d_sae,
        "n_activations": r.n_activations,
        "epochs": r.epochs,
        "converged": r.converged,
        "model": r.model,
        "layer": r.layer,
        "site": r.site,
        "hook": r.hook,
        "backend": r.provenance.backend,
        "seconds": r.provenance.timings.get("total"),
    }


def render(out: dict) -> str:
    lines = [f"{k:>20}: {v}" for k, v in out.items()]
    return "\n".join(lines)
