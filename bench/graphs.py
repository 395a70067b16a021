"""Graph summarisation benchmark: SSumM against the authors' Java numbers, baselines, and scaling.

Run: ``.venv/bin/python -m bench.graphs`` (add ``--quick`` for one seed and no 1M-edge graphs).
Writes ``bench/results/graphs.json``:

- ``ego_facebook``: the project's SSumM (L1 = ReOne variant, L2) at budgets 0.1, 0.2, 0.3, 0.5 on
  ``../shared/data/ego_facebook.txt``, mean over seeds, beside the official Java's errors from
  ``shared/data/README.md``; size in bits against the budget; wall time (numba compiled beforehand).
- ``baselines``: random-merge and SAA-Gs on the same file and budgets (seed 0).
- ``scaling``: R-MAT and SBM graphs of 100k / 300k / 1M edges at budget 0.3, each in a fresh process so its
  peak resident memory (ru_maxrss) is its own; time of the summary alone (graph generation reported apart).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACEBOOK = ROOT.parent / "shared" / "data" / "ego_facebook.txt"
OUT = ROOT / "bench" / "results" / "graphs.json"
BUDGETS = (0.1, 0.2, 0.3, 0.5)
# The authors' Java implementation on ego_facebook.txt (shared/data/README.md), about 1 s per run.
OFFICIAL = {
    0.1: (7.02e-03, 1.69e-05),
    0.2: (5.64e-03, 1.56e-05),
    0.3: (4.75e-03, 1.45e-05),
    0.5: (3.39e-03, 1.28e-05),
}
OFFICIAL_SECONDS = 1.0


def _warm() -> None:
    from engine.graphs.compare import summarize
    from engine.graphs.io import builtin

    g = builtin("karate")
    for m in ("ssumm", "saa-gs", "random-merge"):
        summarize(g, m, budget=0.5)


def facebook(seeds: int) -> tuple[list[dict], list[dict]]:
    from engine.graphs.compare import summarize
    from engine.graphs.io import load_edge_list

    g = load_edge_list(FACEBOOK)
    rows, base = [], []
    for b in BUDGETS:
        row = {"budget": b, "nodes": g.n, "edges": g.m}
        for err, ref in (("l1", OFFICIAL[b][0]), ("l2", OFFICIAL[b][1])):
            vals, secs, sizes, budgets = [], [], [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                r = summarize(g, "ssumm", budget=b, error=err, seed=seed)
                secs.append(time.perf_counter() - t0)
                vals.append(r.l1_error if err == "l1" else r.l2_error)
                sizes.append(r.size_bits)
                budgets.append(r.budget_bits)
            mean = float(np.mean(vals))
            row[err] = {
                "error_mean": mean,
                "error_min": float(np.min(vals)),
                "error_max": float(np.max(vals)),
                "official_error": ref,
                "ratio_to_official": mean / ref,
                "within_5pct": bool(mean <= 1.05 * ref),
                "size_bits_max": float(np.max(sizes)),
                "budget_bits": float(budgets[0]),
                "size_within_budget": bool(np.max(sizes) <= budgets[0]),
                "seconds_mean": float(np.mean(secs)),
                "within_2x_time": bool(np.mean(secs) <= 2 * OFFICIAL_SECONDS),
                "seeds": seeds,
            }
        rows.append(row)
        for m in ("random-merge", "saa-gs"):
            for err in ("l1", "l2"):
                t0 = time.perf_counter()
                r = summarize(g, m, budget=b, error=err, seed=0)
                base.append(
                    {
                        "method": m,
                        "budget": b,
                        "error": err,
                        "l1_error": r.l1_error,
                        "l2_error": r.l2_error,
                        "size_bits": r.size_bits,
                        "budget_bits": r.budget_bits,
                        "seconds": time.perf_counter() - t0,
                    }
                )
    return rows, base


def one(kind: str, m: int) -> dict:
    """Summarise one generated graph at budget 0.3 in this process; report time and peak memory."""
    _warm()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from engine.graphs.compare import summarize
    from engine.graphs.io import generate

    t0 = time.perf_counter()
    g = generate(kind, m, seed=0)
    gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = summarize(g, "ssumm", budget=0.3, error="l2", seed=0)
    secs = time.perf_counter() - t0
    return {
        "graph": g.name,
        "nodes": g.n,
        "edges": g.m,
        "budget": 0.3,
        "seconds": secs,
        "generate_seconds": gen,
        "timings": r.provenance.timings,
        "iterations_run": r.provenance.params.get("iterations_run"),
        "supernodes": r.supernodes,
        "superedges": r.superedges,
        "size_fraction": r.size_bits / r.input_bits,
        "l2_error": r.l2_error,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss0,
    }


def scaling(sizes: tuple[int, ...]) -> list[dict]:
    out = []
    for kind in ("rmat", "sbm"):
        for m in sizes:
            p = subprocess.run(
                [sys.executable, "-m", "bench.graphs", "--one", kind, str(m)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(p.stdout.strip().splitlines()[-1])
            print(
                f"  {kind} {m:>9,} edges: {row['seconds']:.1f} s, peak {row['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed, graphs up to 300k edges")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--one", nargs=2, metavar=("KIND", "EDGES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return
    _warm()
    seeds = 1 if args.quick else args.seeds
    result = {"host": platform.node(), "python": platform.python_version(), "created": time.time()}
    if FACEBOOK.exists():
        print("ego_facebook ...", flush=True)
        result["ego_facebook"], result["baselines"] = facebook(seeds)
        for row in result["ego_facebook"]:
            l1, l2 = row["l1"], row["l2"]
            print(
                f"  budget {row['budget']}: L1 {l1['error_mean']:.3e} (Java {l1['official_error']:.2e}, "
                f"x{l1['ratio_to_official']:.3f}, {l1['seconds_mean']:.2f} s)  L2 {l2['error_mean']:.3e} "
                f"(Java {l2['official_error']:.2e}, x{l2['ratio_to_official']:.3f}, {l2['seconds_mean']:.2f} s)"
            )
    print("scaling ...", flush=True)
    result["scaling"] = scaling((100_000, 300_000) if args.quick else (100_000, 300_000, 1_000_000))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
