"""Toy models of superposition (Elhage et al., 2022) as ground truth for the effective-feature count.

Each toy model compresses ``n`` sparse features into ``m < n`` hidden neurons and decodes them back:

    h     = W x                # [m]       W: [m, n], x: [n]
    x_hat = ReLU(W^T h + b)    # [n]
    loss  = sum_i I_i (x_i - x_hat_i)^2,  I_i = decay^i   (feature importance falls off geometrically)

Feature ``i`` is zero with probability ``S`` (the sparsity) and uniform on [0, 1] otherwise. Dense features
(S = 0) give about ``m`` represented features, the most important ones, each on its own direction; as ``S``
rises the model packs more features than neurons into superposition.

Ground truth rule: feature ``i`` counts as *represented* when its embedding column has norm
``||W[:, i]|| > 0.5`` (a represented feature's column has norm near 1, a dropped one near 0; Elhage et al.'s
feature-dimensionality plots use the same column norms). The measured count is the paper's ``F = exp(H)`` from
a tied SAE (expansion 4) trained on the hidden activations ``h``; the toy sweep reports Pearson's correlation
between the two across sparsity levels (Bereska et al. report above 0.94).

The SAE here defaults to expansion 8 and ``lambda = 2.0``, not the paper's 4 and 0.1, and both are measured
choices (bench/results/superposition.json). The loss ``MSE + lambda mean|z|`` is not scale-free (scaling
activations by ``c`` scales the MSE by ``c^2`` and the penalty by ``c``), and a toy model's hidden activations are
small (one feature of size ~0.5 at a time). At lambda = 0.1 the penalty is too weak to prefer the true features
over the dense "+/- basis" dictionary (2m atoms) that a tied ReLU SAE reconstructs any vector with, so ``F``
saturates near ``2m`` for every sparse model (Pearson r 0.78). And a dictionary of 4m = 20 atoms has little room
above the 16-20 features the sparsest models pack, so their F falls short (r 0.93 at lambda 1). With 8m atoms
and lambda 2, r = 0.977 / 0.966 / 0.985 / 0.950 over four seeds of the default sweep (mean 0.970).

All sparsity levels are trained at once as independent instances (batched matmuls), as in Elhage et al.'s
code, so a sweep of ten levels costs about one model's Python overhead.

References
----------
N. Elhage et al. "Toy Models of Superposition", Transformer Circuits Thread, 2022. arXiv:2209.10652
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.admission import heavy_slot
from engine.registry import InputError, Paper, Param, get, register
from engine.results import Provenance, Result, Stopwatch, fingerprint

from .metrics import feature_count
from .sae import SAEConfig, sae_stats, torch_threads, train_sae_stack

__all__ = [
    "ToyConfig",
    "ToyModels",
    "ToySweepResult",
    "ToyReport",
    "train_toy_models",
    "toy_sweep",
    "sparsity_levels",
    "DEFAULT_SPARSITIES",
    "LEVELS",
]

ELHAGE = Paper(
    "Toy Models of Superposition",
    2022,
    "arXiv:2209.10652",
    "https://arxiv.org/abs/2209.10652",
    ("Elhage, Nelson", "others"),
)
BERESKA = Paper(
    "Superposition as Lossy Compression: Measure with Sparse Autoencoders and Connect to Adversarial Vulnerability",
    2025,
    "Bereska et al., Dec 2025",
    "https://github.com/leonardbereska/superposition-measurement",
    ("Bereska, Leonard", "others"),
)

DEFAULT_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)
REPRESENTED_NORM = 0.5  # ground-truth rule: ||W[:, i]|| > 0.5
MAX_SWEEP_LEVELS = 16
MAX_TOY_FEATURES = 200
LEVELS = Param(
    "sparsities",
    ", ".join(f"{s:g}" for s in DEFAULT_SPARSITIES),
    label=f"Sparsity levels S (at most {MAX_SWEEP_LEVELS})",
    help="numbers in [0, 1) separated by commas; one toy model per level",
)  # the sweep's grid: parsed by sparsity_levels, range-checked with the model's sizes by train_toy_models


@dataclass(frozen=True)
class ToyConfig:
    n_features: int = 20  # n
    n_hidden: int = 5  # m < n
    importance_decay: float = 0.9  # I_i = decay^i
    steps: int = 3000  # Adam steps (Elhage et al. use 10k; 3k is converged at this size)
    batch_size: int = 1024
    lr: float = 1e-3
    n_activations: int = 10_000  # hidden activations sampled per model to train its SAE


@dataclass
class ToyModels:
    W: torch.Tensor  # [k, m, n]
    b: torch.Tensor  # [k, n]
    sparsities: tuple[float, ...]
    config: ToyConfig
    final_loss: np.ndarray  # [k]

    def true_features(self) -> np.ndarray:
        """Number of represented features per instance (column norm > REPRESENTED_NORM)."""
        return (self.W.norm(dim=1) > REPRESENTED_NORM).sum(dim=1).cpu().numpy()

    def sample(self, n: int, *, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh inputs x [k, n, n_features] and hidden activations h = W x [k, n, m]."""
        x = _toy_batch(len(self.sparsities), n, self.config.n_features, self.sparsities, generator)
        with torch.no_grad():
            h = torch.bmm(x, self.W.transpose(1, 2))
        return x, h


def _toy_batch(k: int, batch: int, n: int, sparsities, gen: torch.Generator) -> torch.Tensor:
    """[k, batch, n]: each feature uniform on [0, 1] with probability 1 - S (per instance), else 0."""
    s = torch.as_tensor(sparsities, dtype=torch.float32).view(k, 1, 1)
    keep = torch.rand(k, batch, n, generator=gen) >= s
    return torch.rand(k, batch, n, generator=gen) * keep


def _check_toy(config: ToyConfig, sparsities) -> None:
    if not 1 <= config.n_hidden < config.n_features:
        raise InputError(
            f"need 1 <= neurons < features, got neurons={config.n_hidden}, features={config.n_features}"
        )
    if config.n_features > MAX_TOY_FEATURES:
        raise InputError(f"at most {MAX_TOY_FEATURES} toy features, got {config.n_features}")
    if not 1 <= len(sparsities) <= MAX_SWEEP_LEVELS:
        raise InputError(f"a sweep takes 1 to {MAX_SWEEP_LEVELS} sparsity levels, got {len(sparsities)}")
    for s in sparsities:
        if not (0.0 <= float(s) < 1.0):
            raise InputError(f"sparsity must lie in [0, 1), got {s}")


def sparsity_levels(levels: str | Sequence[float]) -> tuple[float, ...]:
    """The sweep's sparsity levels from ``"0, 0.5, 0.9"`` or a sequence of numbers (ranges are checked by
    :func:`train_toy_models`)."""
    if isinstance(levels, str):
        try:
            levels = [float(x) for x in re.split(r"[,\s]+", levels.strip()) if x]
        except ValueError:
            raise InputError(f"sparsity levels must be numbers separated by commas, got {levels!r}") from None
    out = tuple(float(s) for s in levels)
    if not out:
        raise InputError("give at least one sparsity level")
    return out


def train_toy_models(
    sparsities, config: ToyConfig = ToyConfig(), *, seed: int = 0, progress=None
) -> ToyModels:
    """Train one toy model per sparsity level, all at once; ``progress(frac, desc)`` about twice a second."""
    sparsities = tuple(float(s) for s in sparsities)
    _check_toy(config, sparsities)
    k, n, m = len(sparsities), config.n_features, config.n_hidden
    gen = torch.Generator().manual_seed(seed)
    W = (torch.randn(k, m, n, generator=gen) * (2.0 / (m + n)) ** 0.5).requires_grad_()  # Xavier normal
    b = torch.zeros(k, 1, n, requires_grad=True)
    importance = config.importance_decay ** torch.arange(n, dtype=torch.float32)  # [n]
    opt = torch.optim.Adam([W, b], lr=config.lr)
    loss_k = torch.zeros(k)
    with torch_threads(1):  # tiny tensors: one thread beats two busy ones several times over
        loss_k = _train_toy_loop(W, b, opt, importance, config, sparsities, gen, progress)
    return ToyModels(
        W=W.detach(), b=b.detach()[:, 0], sparsities=sparsities, config=config, final_loss=loss_k.numpy()
    )


def _train_toy_loop(W, b, opt, importance, config: ToyConfig, sparsities, gen, progress=None) -> torch.Tensor:
    k, n = W.shape[0], W.shape[2]
    loss_k = torch.zeros(k)
    last = time.perf_counter()
    for step in range(config.steps):
        if progress is not None and time.perf_counter() - last > 0.5:  # each call may stop the job
            progress(step / config.steps, f"toy models: step {step} of {config.steps}")
            last = time.perf_counter()
        x = _toy_batch(k, config.batch_size, n, sparsities, gen)  # [k, B, n]
        h = torch.bmm(x, W.transpose(1, 2))  # [k, B, m]
        out = torch.relu(torch.bmm(h, W) + b)  # [k, B, n]
        loss_k = (importance * (x - out) ** 2).sum(-1).mean(-1)  # [k], importance-weighted
        opt.zero_grad(set_to_none=True)
        loss_k.sum().backward()
        opt.step()
    return loss_k.detach()


@dataclass
class ToySweepResult(Result):
    sparsities: list[float] = field(default_factory=list)
    true_features: list[int] = field(default_factory=list)  # ground truth per level (column norm > 0.5)
    effective_features: list[float] = field(default_factory=list)  # measured F per level
    entropy: list[float] = field(default_factory=list)
    psi: list[float] = field(default_factory=list)
    sae_epochs: list[int] = field(default_factory=list)
    sae_explained_variance: list[float] = field(default_factory=list)
    toy_loss: list[float] = field(default_factory=list)
    pearson_r: float = float("nan")
    n_features: int = 0
    n_hidden: int = 0
    rule: str = f"feature i is represented when ||W[:, i]|| > {REPRESENTED_NORM}"
    gram: list = field(default_factory=list)  # [k][n][n] W^T W per level
    column_norms: list = field(default_factory=list)  # [k][n]

    def tables(self):
        rows = [
            {
                "sparsity": s,
                "true_features": t,
                "effective_features": f,
                "psi": p,
                "sae_epochs": e,
                "sae_explained_variance": ev,
            }
            for s, t, f, p, e, ev in zip(
                self.sparsities,
                self.true_features,
                self.effective_features,
                self.psi,
                self.sae_epochs,
                self.sae_explained_variance,
            )
        ]
        return {"toy_sweep": rows}


def pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@register(
    "toy-superposition",
    family="superposition",
    paper=ELHAGE,
    summary="Trains Elhage et al.'s toy models over a sparsity sweep and checks the SAE feature count "
    "F = exp(H) against the number of features each model represents.",
    role="toy",
    acts_at="toy model",
    params=[
        Param("n_features", 20, low=2, high=MAX_TOY_FEATURES, help="sparse input features n"),
        Param("n_hidden", 5, low=1, high=100, help="hidden neurons m < n"),
        Param("importance_decay", 0.9, low=0.5, high=1.0, help="feature importance I_i = decay^i"),
        Param("steps", 3000, low=100, high=20000, help="Adam steps per toy model"),
        Param(
            "sae_expansion",
            8.0,
            low=1.0,
            high=16.0,
            step=1,
            help="SAE dictionary size / m (see module docstring)",
        ),
        Param(
            "sae_l1",
            2.0,
            low=0.0,
            high=10.0,
            step=0.01,
            help="SAE L1 coefficient lambda (see module docstring)",
        ),
        Param("sae_max_epochs", 300, low=1, high=1000, help="epoch cap of each level's SAE"),
    ],
)
def toy_sweep(
    sparsities=DEFAULT_SPARSITIES,
    *,
    n_features: int = 20,
    n_hidden: int = 5,
    importance_decay: float = 0.9,
    steps: int = 3000,
    sae_expansion: float = 8.0,
    sae_l1: float = 2.0,
    sae_max_epochs: int = 300,
    seed: int = 0,
    progress=None,
) -> ToySweepResult:
    """Measured F against ground truth over a sparsity sweep (one toy model and one SAE per level).

    ``sparsities`` is a sequence of levels or a string such as ``"0, 0.5, 0.9"`` (:func:`sparsity_levels`); the
    other parameters are checked by the method's registry entry (the one range check).
    """
    sparsities = sparsity_levels(sparsities)
    checked = get("toy-superposition").validate(
        dict(
            n_features=n_features,
            n_hidden=n_hidden,
            importance_decay=importance_decay,
            steps=steps,
            sae_expansion=sae_expansion,
            sae_l1=sae_l1,
            sae_max_epochs=sae_max_epochs,
        )
    )
    params = dict(sparsities=list(sparsities), **checked)
    cfg = ToyConfig(**{k: checked[k] for k in ("n_features", "n_hidden", "importance_decay", "steps")})
    sae_expansion, sae_l1, sae_max_epochs = (
        checked[k] for k in ("sae_expansion", "sae_l1", "sae_max_epochs")
    )
    with heavy_slot("toy models", expect_s=20.0, progress=progress):
        sw = Stopwatch()
        t0 = time.perf_counter()
        with sw("train_toy"):
            if progress:
                progress(0.05, "training toy models")
            toys = train_toy_models(
                sparsities,
                cfg,
                seed=seed,
                progress=(lambda f, d: progress(0.05 + 0.35 * f, d)) if progress else None,
            )
        gen = torch.Generator().manual_seed(seed + 1)
        _, h = toys.sample(cfg.n_activations, generator=gen)  # [k, N, m]
        # A level whose hidden activations are all zero (every feature dropped) cannot train an SAE.
        with sw("train_sae"):
            if progress:
                progress(0.4, "training one SAE per level")
            sae_cfg = SAEConfig(
                expansion=float(sae_expansion),
                l1=float(sae_l1),
                max_epochs=int(sae_max_epochs),
                normalize="none",
            )
            tick = (
                (lambda ep, loss: progress(0.4 + 0.55 * min(1.0, (ep + 1) / sae_cfg.max_epochs),
                                           f"SAEs: epoch {int(ep) + 1} of at most {sae_cfg.max_epochs}"))
                if progress else None
            )  # fmt: skip
            trained = train_sae_stack(h, sae_cfg, seed=seed, device="cpu", progress=tick)
        with sw("measure"):
            effs, ents, psis, evs = [], [], [], []
            for j, tr in enumerate(trained):
                st = sae_stats(tr.sae, h[j])
                fc = feature_count(st.mean_abs[None], cfg.n_hidden)
                effs.append(fc.effective_features)
                ents.append(fc.entropy)
                psis.append(fc.psi)
                evs.append(st.explained_variance)
        true = toys.true_features().tolist()
        gram = torch.bmm(toys.W.transpose(1, 2), toys.W)  # [k, n, n]
        prov = Provenance(
            method="toy-superposition",
            params=params,
            input_fingerprint=fingerprint("toy", params),
            seed=seed,
            backend="cpu",
            timings={**sw.timings, "total": time.perf_counter() - t0},
        )
        return ToySweepResult(
            provenance=prov,
            sparsities=list(toys.sparsities),
            true_features=[int(t) for t in true],
            effective_features=effs,
            entropy=ents,
            psi=psis,
            sae_epochs=[tr.epochs for tr in trained],
            sae_explained_variance=evs,
            toy_loss=toys.final_loss.tolist(),
            pearson_r=pearson(true, effs),
            n_features=cfg.n_features,
            n_hidden=cfg.n_hidden,
            gram=gram.numpy().round(4).tolist(),
            column_norms=toys.W.norm(dim=1).numpy().round(4).tolist(),
        )


@dataclass
class ToyReport(Result):
    """What ``redex sae --toy`` prints: one level's numbers as scalars, several levels' as lists (plus
    ``pearson_r``). Built from the same :class:`ToySweepResult` the tab downloads (:meth:`from_sweep`)."""

    effective_features: Any = None  # float, or [k] floats for several levels
    true_features: Any = None  # int, or [k] ints
    neurons: int = 0
    features: int = 0
    sparsity: Any = None  # float, or [k] floats
    psi: Any = None
    rule: str = ""
    seconds: float | None = None
    pearson_r: float | None = None  # only for several levels (one level has no correlation)

    @classmethod
    def from_sweep(cls, r: ToySweepResult) -> ToyReport:
        one = len(r.sparsities) == 1

        def pick(values):
            return values[0] if one else list(values)

        return cls(
            provenance=r.provenance,
            effective_features=pick(r.effective_features),
            true_features=pick(r.true_features),
            neurons=r.n_hidden,
            features=r.n_features,
            sparsity=pick(r.sparsities),
            psi=pick(r.psi),
            rule=r.rule,
            seconds=r.provenance.timings.get("total"),
            pearson_r=None if one else r.pearson_r,
        )

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not isinstance(self.sparsity, list):
            d.pop("pearson_r")
        return d
