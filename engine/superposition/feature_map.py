"""Feature map: a 2-D UMAP of an SAE's decoder directions, coloured by activation frequency.

Each point is one dictionary feature (a row of ``W_dec``, unit-normalised, cosine metric), so features that
write in similar directions sit together. Colour is how often the feature fires (log10 of the fraction of
tokens with ``z_i > 0``); hovering shows the tokens on which it fires most strongly, each with the text before
it. Dead features (never active on these activations) are left out and counted.

UMAP (McInnes et al., 2018, arXiv:1802.03426) compiles its numba kernels on first use (tens of seconds on a
small CPU); :func:`warm_umap` runs a tiny fit at start-up so the first map a user asks for is not slow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.admission import heavy_slot
from engine.cache import ResultCache
from engine.registry import InputError, Param, Settings
from engine.results import Provenance, Result, Stopwatch, fingerprint

__all__ = ["FeatureMap", "MAP_SETTINGS", "feature_map", "warm_umap", "top_activations"]

MAX_MAP_FEATURES = 8192
MAP_SETTINGS = Settings(
    "feature map",
    (
        Param("n_neighbors", 15, low=2, high=200, help="UMAP neighbours (umap's default 15)"),
        Param("min_dist", 0.1, low=0.0, high=1.0, help="UMAP minimum distance (umap's default 0.1)"),
        Param("top_k", 3, low=1, high=20, help="top-activating tokens shown per feature"),
        Param("context", 8, low=0, high=64, help="tokens of text shown before each top token"),
        Param("seed", 0, help="UMAP's random state"),
    ),
)


@dataclass
class FeatureMap(Result):
    features: list[int] = field(default_factory=list)  # dictionary index of each point
    xy: list = field(default_factory=list)  # [n, 2] UMAP coordinates
    freq: list[float] = field(default_factory=list)  # activation frequency of each point
    mass: list[float] = field(default_factory=list)  # p_i of each point
    hover: list[str] = field(default_factory=list)  # top-activating tokens in context
    n_dead: int = 0
    label: str = ""
    warning: str = ""  # said on the figure: the SAE did not converge, or its code is dense
    precomputed: str = ""  # where a shipped map was computed ("" = computed for this request)

    def tables(self):
        return {
            "features": [
                {"feature": f, "x": xy[0], "y": xy[1], "freq": fr, "p": m, "top_tokens": h}
                for f, xy, fr, m, h in zip(self.features, self.xy, self.freq, self.mass, self.hover)
            ]
        }


def _umap(n_neighbors: int, min_dist: float, seed: int):
    import umap

    return umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_components=2,
        init="random",
        n_epochs=200,  # umap picks 500 below 10k points; 200 gives the same layout in 40% of the time
    )


def warm_umap() -> float:
    """Compile umap's numba kernels with a tiny fit; returns the seconds it took."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    _umap(15, 0.1, 0).fit_transform(rng.normal(size=(64, 8)).astype(np.float32))
    return time.perf_counter() - t0


@torch.no_grad()
def top_activations(
    sae, acts: torch.Tensor, k: int = 3, *, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the ``k`` rows of ``acts`` with the largest code: values [k, d_sae], row indices [k, d_sae]."""
    dev = next(sae.parameters()).device
    best_v = torch.full((k, sae.d_sae), -1.0)
    best_i = torch.zeros((k, sae.d_sae), dtype=torch.long)
    for start in range(0, acts.shape[0], batch_size):
        z = sae.encode(acts[start : start + batch_size].to(dev)).float().cpu()  # [b, d_sae]
        kk = min(k, z.shape[0])
        v, i = torch.topk(z, kk, dim=0)  # [kk, d_sae]
        cat_v = torch.cat([best_v, v], dim=0)
        cat_i = torch.cat([best_i, i + start], dim=0)
        top = torch.topk(cat_v, k, dim=0)
        best_v, best_i = top.values, torch.gather(cat_i, 0, top.indices)
    return best_v.numpy(), best_i.numpy()


def _snippets(
    tokenizer, token_ids: torch.Tensor, rows: torch.Tensor, idx: np.ndarray, context: int
) -> list[str]:
    """Text before each row's token plus the token in «», for row indices ``idx`` (flat)."""
    out = []
    for r in idx.tolist():
        w, p = (int(v) for v in rows[r])
        before = tokenizer.decode(token_ids[w, max(0, p - context) : p].tolist())
        tok = tokenizer.decode(token_ids[w, p : p + 1].tolist())
        text = (before + "«" + tok + "»").replace("\n", "⏎").replace("<", "&lt;").replace(">", "&gt;")
        out.append(text[-70:])
    return out


def feature_map(
    measurement,
    *,
    tokenizer=None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    top_k: int = 3,
    context: int = 8,
    seed: int = 0,
    progress=None,
) -> FeatureMap:
    """UMAP of the decoder directions of ``measurement.sae`` (a :class:`~.measure.LayerMeasurement`).

    ``tokenizer`` decodes the top-activating tokens (default: the one the measurement kept); the options are
    checked by :data:`MAP_SETTINGS`. Maps are kept in memory by the measurement they draw; a shipped default
    measurement (no SAE in it) answers with its shipped map. ``progress(frac, desc)`` is told each stage.
    """
    opts = MAP_SETTINGS.validate(
        dict(n_neighbors=n_neighbors, min_dist=min_dist, top_k=top_k, context=context, seed=seed)
    )
    n_neighbors, min_dist, top_k, context, seed = (
        opts[k] for k in ("n_neighbors", "min_dist", "top_k", "context", "seed")
    )
    tokenizer = tokenizer if tokenizer is not None else getattr(measurement, "tokenizer", None)
    sae = measurement.sae
    if sae is None:
        from . import shipped

        fm = shipped.feature_map_for(measurement) if opts == MAP_SETTINGS.defaults() else None
        if fm is not None:  # a shipped default measurement carries no SAE; its map was computed with it
            return fm
        raise InputError("this measurement holds no SAE to map; run a measurement first")
    parts = (measurement.provenance.input_fingerprint, measurement.provenance.params, measurement.provenance.seed,
             measurement.p, measurement.losses, opts)  # fmt: skip

    def compute() -> FeatureMap:
        if progress is not None:
            progress(0.1, f"UMAP of {int(np.count_nonzero(np.asarray(measurement.freq)))} decoder directions")
        with heavy_slot("a feature map (UMAP)", expect_s=20.0, progress=progress):
            return _feature_map(
                measurement, sae, tokenizer, n_neighbors, min_dist, top_k, context, seed, progress
            )

    return _MAPS.get_or_compute(parts, compute)


_MAPS = ResultCache("superposition-feature-map", maxsize=8)  # memory only: small, recomputed after a restart


def _feature_map(measurement, sae, tokenizer, n_neighbors, min_dist, top_k, context, seed, progress):
    sw = Stopwatch()
    t0 = time.perf_counter()
    freq = np.asarray(measurement.freq, dtype=np.float64)
    p = np.asarray(measurement.p, dtype=np.float64)
    alive = np.nonzero(freq > 0)[0]
    if alive.size < max(n_neighbors + 1, 4):
        raise InputError(f"only {alive.size} SAE features are ever active: too few to map")
    if alive.size > MAX_MAP_FEATURES:
        raise InputError(f"{alive.size} features is over the map's cap of {MAX_MAP_FEATURES}")
    with sw("umap"):
        dirs = torch.nn.functional.normalize(sae.W_dec.detach().float().cpu(), dim=1).numpy()[alive]
        xy = _umap(n_neighbors, min_dist, seed).fit_transform(dirs)
    if progress is not None:
        progress(0.8, "top-activating tokens per feature")
    hover = [f"feature {int(i)}" for i in alive]
    aset = measurement.activations
    if aset is not None and tokenizer is not None:
        with sw("top_tokens"):
            layer = measurement.layer
            acts, rows = aset.acts[layer], aset.rows[layer]
            vals, idx = top_activations(sae, acts, top_k)
            flat = idx[:, alive].T.reshape(-1)  # [n_alive * k]
            snips = _snippets(tokenizer, aset.token_ids, rows, flat, context)
            hover = []
            for j, f in enumerate(alive):
                lines = [f"<b>feature {int(f)}</b> · fires on {freq[f]:.2%} of tokens · p={p[f]:.2e}"]
                for r in range(top_k):
                    lines.append(f"{vals[r, f]:.2f}  {snips[j * top_k + r]}")
                hover.append("<br>".join(lines))
    prov = Provenance(
        method="sae-feature-map",
        params={"n_neighbors": n_neighbors, "min_dist": min_dist, "top_k": top_k, "context": context},
        input_fingerprint=fingerprint(
            measurement.provenance.input_fingerprint, measurement.provenance.params
        ),
        seed=seed,
        backend="cpu",
        timings={**sw.timings, "total": time.perf_counter() - t0},
    )
    return FeatureMap(
        provenance=prov,
        features=[int(i) for i in alive],
        xy=np.asarray(xy, dtype=np.float32).tolist(),
        freq=freq[alive].tolist(),
        mass=p[alive].tolist(),
        hover=hover,
        n_dead=int(freq.size - alive.size),
        label=f"{measurement.model} {measurement.hook}",
        warning="; ".join(measurement.warnings()) if hasattr(measurement, "warnings") else "",
    )
