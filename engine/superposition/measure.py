"""Registered measurements: one layer's effective-feature count, and a scan over every layer of a model.

``sae-feature-count`` captures a layer's activations (:mod:`.activations`), trains the paper's tied SAE on
them (:mod:`.sae`) or applies a user's pretrained SAELens SAE, and reports ``F = exp(H)``, ``N`` and
``psi = F / N`` (:mod:`.metrics`) with the SAE's reconstruction and sparsity statistics. Measurements are kept
in memory by input fingerprint (they hold their SAE and activations, which the feature map reads).

``sae-layer-scan`` does the same for many layers from one forward pass per batch, and, because ``F`` depends on
the L1 coefficient and the dictionary size (the paper says so and shows it), repeats the measurement for a
small one-at-a-time sweep around the defaults (lambda x {0.5, 2}, expansion x {0.5, 2}); the minimum and maximum
``F`` over the sweep form the sensitivity band drawn around each layer's value. Scans of the default corpus are
cached on disk by input fingerprint (:class:`engine.cache.ResultCache`), so a restart does not lose them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.admission import check_memory, heavy_slot
from engine.cache import ResultCache
from engine.registry import InputError, Param, get, register
from engine.results import Provenance, Result, Stopwatch, fingerprint, from_dict

from . import shipped
from .activations import SITES, ActivationSet, collect_activations, hook_name
from .metrics import feature_count
from .sae import SAEConfig, SparseAutoencoder, TrainedSAE, sae_stats, train_sae, train_sae_stack
from .saelens_io import inspect_sae_file, load_saelens
from .toy import BERESKA

__all__ = [
    "LayerMeasurement",
    "LayerScan",
    "measure_layer",
    "scan_layers",
    "measure_activations",
    "SWEEP",
    "scan_activations",
    "scan_key",
    "remember_scan",
    "sweep_settings",
    "parse_layers",
    "SAE_PARAMS",
    "MAX_SWEEP_RUNS",
]

SWEEP = (("l1", 0.5), ("l1", 2.0), ("expansion", 0.5), ("expansion", 2.0))  # one-at-a-time factors
DENSE_L0 = 0.1  # a mean L0 above this fraction of the dictionary counts as a dense code
MAX_SWEEP_RUNS = 400  # layers x (1 + sweep settings): more than this is refused as too large
MAX_SCAN_ROWS = 200_000  # layers x activations per layer held in memory at once (~460 MB at width 576)
SCAN_VERSION = (
    2  # bump when a scan's numbers change; 1 was the key of engine.cache.disk_put before ResultCache
)

SAE_PARAMS = [
    Param("expansion", 4.0, low=1.0, high=32.0, step=1, help="dictionary size / layer width (paper: 4)"),
    Param("l1", 0.1, low=0.0, high=10.0, step=0.01, help="L1 coefficient lambda (paper: 0.1)"),
    Param("lr", 1e-3, low=1e-5, high=1e-1, help="Adam learning rate (paper: 1e-3)"),
    Param("batch_size", 128, low=8, high=4096, help="SAE batch size (paper: 128)"),
    Param("max_activations", 10_000, low=256, high=20_000, help="activations the SAE trains on (paper: 10k)"),
    Param("max_epochs", 300, low=1, high=1000, help="epoch cap"),
    Param("patience", 10, low=1, high=100, help="early stopping: epochs without improvement (paper: 10)"),
    Param("min_delta", 1e-3, low=0.0, high=0.1, help="relative improvement that resets patience (paper: 0)"),
]


def _sae_config(**kw) -> SAEConfig:
    names = {f for f in SAEConfig.__dataclass_fields__}
    return SAEConfig(**{k: v for k, v in kw.items() if k in names})


@dataclass
class LayerMeasurement(Result):
    model: str = ""
    layer: int = -1
    site: str = "resid"
    hook: str = ""
    neurons: int = 0  # N, layer width
    d_sae: int = 0
    n_activations: int = 0
    entropy: float = float("nan")
    effective_features: float = float("nan")
    psi: float = float("nan")
    mse: float = float("nan")
    explained_variance: float = float("nan")
    l0: float = float("nan")
    dead_fraction: float = float("nan")
    dense_fraction: float = float("nan")
    sae_source: str = "trained"  # "trained", or the uploaded SAELens file's name
    sae_info: dict[str, Any] = field(default_factory=dict)  # an uploaded SAE: architecture, shapes, cfg file
    precomputed: str = ""  # where a shipped measurement was computed ("" = computed for this request)
    shipped_key: str = ""  # its key in assets/superposition/index.json
    epochs: int = 0
    best_epoch: int = 0
    converged: bool = False  # early stopping fired before max_epochs
    sae_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    p: list[float] = field(default_factory=list)  # [d_sae] activation-mass distribution
    freq: list[float] = field(default_factory=list)  # [d_sae] activation frequency
    # not serialised: the SAE, the activations and the model's tokenizer, for the feature map
    sae: Any = field(default=None, repr=False)
    activations: Any = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)

    def warnings(self) -> list[str]:
        """What makes this measurement a poor basis for F: an SAE stopped by the epoch cap before the
        early-stopping rule fired, or a dense code (mean L0 over DENSE_L0 of the dictionary, or most features
        active on more than 10 % of tokens), where F mostly counts the dictionary. Empty when it is sound."""
        out = []
        if self.sae_source == "trained" and not self.converged:
            out.append(
                f"SAE NOT CONVERGED: stopped at the {self.epochs}-epoch cap before early stopping fired"
            )
        if self.d_sae and (self.l0 > DENSE_L0 * self.d_sae or self.dense_fraction > 0.5):
            out.append(f"DENSE CODE: mean L0 {self.l0:.0f} of {self.d_sae} features "
                       f"({self.dense_fraction:.0%} active on >10% of tokens), so F mostly counts the dictionary")  # fmt: skip
        return out

    def summary(self) -> dict[str, Any]:
        keys = (
            "model layer site neurons d_sae n_activations effective_features psi entropy mse "
            "explained_variance l0 dead_fraction dense_fraction epochs converged sae_seconds"
        ).split()
        return {k: getattr(self, k) for k in keys}

    def tables(self):
        return {
            "summary": [self.summary()],
            "features": [
                {"feature": i, "p": p, "freq": f} for i, (p, f) in enumerate(zip(self.p, self.freq))
            ],
        }


def measure_activations(
    acts: torch.Tensor,
    *,
    sae: SparseAutoencoder | None = None,
    config: SAEConfig = SAEConfig(),
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, Any], TrainedSAE | None, SparseAutoencoder]:
    """Train (or apply) an SAE on ``acts`` [N, d] and return the metrics dict, the training record, the SAE."""
    trained = None
    if sae is None:
        trained = train_sae(acts, config, seed=seed, device=device, progress=progress)
        sae = trained.sae
    elif sae.d_in != acts.shape[1]:
        raise InputError(f"the SAE expects width {sae.d_in}, the layer has width {acts.shape[1]}")
    st = sae_stats(sae, acts)
    fc = feature_count(st.mean_abs[None], acts.shape[1])
    p = st.mean_abs / st.mean_abs.sum() if st.mean_abs.sum() > 0 else np.full(sae.d_sae, 1.0 / sae.d_sae)
    metrics = dict(
        neurons=int(acts.shape[1]),
        d_sae=sae.d_sae,
        n_activations=int(acts.shape[0]),
        entropy=fc.entropy,
        effective_features=fc.effective_features,
        psi=fc.psi,
        mse=st.mse,
        explained_variance=st.explained_variance,
        l0=st.l0,
        dead_fraction=st.dead_fraction,
        dense_fraction=st.dense_fraction,
        p=p.astype(np.float32).tolist(),
        freq=st.freq.astype(np.float32).tolist(),
    )
    if trained is not None:
        metrics.update(
            epochs=trained.epochs,
            best_epoch=trained.best_epoch,
            converged=trained.stopped_early,
            sae_seconds=trained.seconds,
            losses=trained.losses,
        )
    return metrics, trained, sae


@register(
    "sae-feature-count",
    family="superposition",
    role="measure",
    acts_at="layer",
    paper=BERESKA,
    summary="Trains the paper's tied ReLU SAE on one layer's activations and counts effective features "
    "F = exp(H) of the activation-mass distribution; psi = F / N.",
    params=SAE_PARAMS,
)
def measure_layer(
    model: str = "smollm2",
    layer: int = 0,
    *,
    site: str = "resid",
    text: str | None = None,
    seq_len: int = 128,
    sae_path: str | None = None,
    sae_cfg_path: str | None = None,
    allow_network: bool = False,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
    **sae_params: Any,
) -> LayerMeasurement:
    """Effective features of one layer of ``model`` (a built-in name, a directory or a hub id).

    ``sae_params`` are the method's parameters (``expansion``, ``l1``, ...), checked by its registry entry.
    The measurement is kept in memory by everything it depends on (with the SAE file's size and time), so a
    repeated request, or the feature map that follows a measurement, answers at once.
    """
    params = _validated(sae_params)
    if site not in SITES:
        raise InputError(f"unknown site {site!r}; choose one of {sorted(SITES)}")
    parts = (model, int(layer), site, text or "", seq_len, params, _file_stamp(sae_path), sae_cfg_path, seed)
    hit = None if sae_path else shipped.measurement(shipped.key(parts))
    if hit is not None:
        return hit
    if sae_path:  # size cap and header checks before anything is read whole or any model loads
        inspect_sae_file(sae_path, cfg_path=sae_cfg_path)

    def compute() -> LayerMeasurement:
        what = "applying an uploaded SAE" if sae_path else "training an SAE"
        with heavy_slot(what, expect_s=60.0 if sae_path else 300.0, progress=progress):
            return _measure(model, int(layer), site, text, seq_len, sae_path, sae_cfg_path, allow_network, seed,
                            progress, params)  # fmt: skip

    return _MEASURED.get_or_compute(parts, compute)


_MEASURED = ResultCache("superposition-measure", maxsize=6)  # memory only: each holds an SAE and activations


def _file_stamp(path: str | None) -> tuple:
    """(path, size, mtime) of an SAE file or directory, so a replaced upload is not answered from the cache."""
    if not path:
        return ()
    p = Path(path)
    p = p / "sae_weights.safetensors" if p.is_dir() else p
    st = p.stat() if p.exists() else None
    return (str(path), st.st_size if st else -1, st.st_mtime if st else -1)


def sae_train_bytes(n_tokens: int, width: int, d_sae: int, *, batch_size: int = 128, k: int = 1) -> int:
    """Memory estimate of training ``k`` SAEs of ``d_sae`` x ``width`` on ``n_tokens`` activations each, float32:
    the activations and their scaled copy, the weights with their gradient, Adam's two moments and the best
    copy (5 x), and one batch's codes with their gradients (4 x)."""
    return 4 * k * (2 * n_tokens * width + 5 * d_sae * width + 4 * batch_size * d_sae)


def _measure(
    model, layer, site, text, seq_len, sae_path, sae_cfg_path, allow_network, seed, progress, params
) -> LayerMeasurement:
    from engine.models import load_model

    cfg = _sae_config(**params)
    sw = Stopwatch()
    t0 = time.perf_counter()
    with sw("load_model"):
        if progress is not None:
            progress(0.0, f"loading {model}")
        loaded = load_model(model, allow_network=allow_network)
    width = int(loaded.hidden_size)
    d_sae = int(round(width * cfg.expansion))
    check_memory(sae_train_bytes(cfg.max_activations, width, d_sae, batch_size=cfg.batch_size),
                 f"An SAE of {d_sae:,} x {width} on {cfg.max_activations:,} tokens")  # fmt: skip
    cap = (lambda f, m: progress(0.2 * f, m)) if progress is not None else None
    with sw("capture"):
        aset = collect_activations(
            loaded, [layer], site=site, text=text, max_activations=cfg.max_activations, seq_len=seq_len,
            progress=cap,
        )  # fmt: skip
    acts = aset.acts[layer]
    user_sae = None
    if sae_path:
        user_sae = load_saelens(sae_path, cfg_path=sae_cfg_path, d_in=acts.shape[1]).to(_device())

    def epoch_cb(ep, loss):  # after each epoch (an int, 0-based) and within one (a float): see train_sae
        if progress is not None:
            done = ep + 1 if isinstance(ep, int) else ep
            progress(0.2 + 0.79 * min(1.0, done / cfg.max_epochs),
                     f"SAE epoch {int(ep) + 1} of at most {cfg.max_epochs}, loss {loss:.4g}")  # fmt: skip

    with sw("sae"):
        metrics, _, sae = measure_activations(acts, sae=user_sae, config=cfg, seed=seed, progress=epoch_cb)
    return assemble(model, layer, site, text, seq_len, sae_path, params, seed, aset, metrics, sae,
                    getattr(loaded, "tokenizer", None), {**sw.timings, "total": time.perf_counter() - t0},
                    _device())  # fmt: skip


def assemble(model, layer, site, text, seq_len, sae_path, params, seed, aset, metrics, sae, tokenizer, timings,
             backend) -> LayerMeasurement:  # fmt: skip
    """The :class:`LayerMeasurement` of one layer from its parts (also used to build the shipped defaults)."""
    prov = Provenance(
        method="sae-feature-count",
        params={**params, "model": model, "layer": layer, "site": site, "seq_len": seq_len},
        input_fingerprint=fingerprint(model, layer, site, text or "default-corpus", sae_path or ""),
        seed=seed,
        backend=backend,
        timings=timings,
    )
    return LayerMeasurement(
        provenance=prov,
        model=model,
        layer=layer,
        site=site,
        hook=hook_name(layer, site),
        sae_source=Path(sae_path).name if sae_path else "trained",
        sae_info=dict(getattr(sae, "source_info", None) or {}) if sae_path else {},
        sae=sae,
        activations=aset,
        tokenizer=tokenizer,
        **metrics,
    )


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _validated(sae_params: dict[str, Any]) -> dict[str, Any]:
    return get("sae-feature-count").validate(sae_params)


@dataclass
class LayerScan(Result):
    model: str = ""
    site: str = "resid"
    layers: list[int] = field(default_factory=list)
    neurons: list[int] = field(default_factory=list)
    effective_features: list[float] = field(default_factory=list)
    psi: list[float] = field(default_factory=list)
    f_low: list[float] = field(default_factory=list)  # band: min F over the sweep (and the default)
    f_high: list[float] = field(default_factory=list)
    explained_variance: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    sweep: list[dict[str, Any]] = field(default_factory=list)  # per layer: [{l1, expansion, F}, ...]
    n_activations: int = 0

    def warnings(self) -> list[str]:
        """What makes this scan a poor basis for F (see :meth:`LayerMeasurement.warnings`): layers whose SAE
        ran to the epoch cap, and a dense code on average. Empty when it is sound."""
        out = []
        cap = self.provenance.params.get("max_epochs")
        capped = [layer for layer, e in zip(self.layers, self.epochs) if cap and e >= cap]
        if capped:
            out.append(f"SAE NOT CONVERGED on {len(capped)} of {len(self.layers)} layers: stopped at the "
                       f"{cap}-epoch cap before early stopping fired")  # fmt: skip
        d_sae = self.provenance.params.get("expansion", 0) * (self.neurons[0] if self.neurons else 0)
        if d_sae and self.l0 and float(np.mean(self.l0)) > DENSE_L0 * d_sae:
            out.append(f"DENSE CODE: mean L0 {float(np.mean(self.l0)):.0f} of {int(d_sae)} features, "
                       "so F mostly counts the dictionary")  # fmt: skip
        return out

    def tables(self):
        rows = []
        for i, layer in enumerate(self.layers):
            rows.append(
                {
                    "layer": layer,
                    "neurons": self.neurons[i],
                    "effective_features": self.effective_features[i],
                    "psi": self.psi[i],
                    "f_low": self.f_low[i],
                    "f_high": self.f_high[i],
                    "explained_variance": self.explained_variance[i],
                    "l0": self.l0[i],
                    "dead_fraction": self.dead_fraction[i],
                    "epochs": self.epochs[i],
                }
            )
        return {"layers": rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerScan:
        return from_dict(cls, d)


_SCANS = ResultCache("superposition-scan", version=SCAN_VERSION, maxsize=8, load=LayerScan.from_dict)
_SCANS_MEMORY = ResultCache("superposition-scan", version=SCAN_VERSION, maxsize=8)  # scans of a user's text


@register(
    "sae-layer-scan",
    family="superposition",
    role="scan",
    acts_at="layer",
    paper=BERESKA,
    summary="Effective features F and psi = F / N for every chosen layer, with a sensitivity band from a small "
    "sweep of the L1 coefficient and the dictionary size.",
    params=[
        *SAE_PARAMS[:4],
        Param("max_activations", 1024, low=256, high=20_000, help="activations per layer"),
        Param("max_epochs", 20, low=1, high=1000, help="epoch cap per SAE (20 keeps a CPU scan in minutes)"),
        *SAE_PARAMS[6:],
        Param("sweep", True, help="also train the sensitivity-sweep SAEs (4 more per layer)"),
    ],
)
def scan_layers(
    model: str = "smollm2",
    layers: Sequence[int] | str | None = None,
    *,
    site: str = "resid",
    text: str | None = None,
    seq_len: int = 128,
    allow_network: bool = False,
    seed: int = 0,
    use_disk_cache: bool = True,
    progress: Callable[[float, str], None] | None = None,
    **params: Any,
) -> LayerScan:
    """``F``, ``N``, ``psi`` per layer (all layers by default) with a sensitivity band.

    ``layers`` is a list of block indices, a spec such as ``"0-5, 9"`` (:func:`parse_layers`), or ``None`` /
    ``"all"`` for every layer. ``params`` are the method's parameters, checked by its registry entry.
    """
    from engine.models import load_model

    params = get("sae-layer-scan").validate(params)
    do_sweep = bool(params.pop("sweep"))
    cfg = _sae_config(**params)
    if site not in SITES:
        raise InputError(f"unknown site {site!r}; choose one of {sorted(SITES)}")
    if isinstance(layers, str):
        layers = parse_layers(layers)
    loaded = load_model(model, allow_network=allow_network)
    layers = list(range(loaded.n_layers)) if not layers else sorted({int(x) for x in layers})
    runs = len(layers) * (1 + (len(SWEEP) if do_sweep else 0))
    if runs > MAX_SWEEP_RUNS:
        raise InputError(f"that scan trains {runs} SAEs; the cap is {MAX_SWEEP_RUNS}: choose fewer layers")
    if len(layers) * cfg.max_activations > MAX_SCAN_ROWS:
        raise InputError(
            f"{len(layers)} layers x {cfg.max_activations:,} activations is over the cap of {MAX_SCAN_ROWS:,} "
            "rows held at once: choose fewer layers or fewer activations per layer"
        )
    key = scan_key(model, layers, site, text, seq_len, params, do_sweep, seed)
    width = int(loaded.hidden_size)
    widest = max(cfg.expansion, *(cfg.expansion * f for name, f in SWEEP if do_sweep and name == "expansion"))

    def compute() -> LayerScan:
        check_memory(
            4 * len(layers) * cfg.max_activations * width  # the captured activations
            + sae_train_bytes(cfg.max_activations, width, int(round(width * widest)), batch_size=cfg.batch_size,
                              k=len(layers)),  # the widest sweep setting's stack of SAEs
            f"A scan of {len(layers)} layers x {cfg.max_activations:,} activations",
        )  # fmt: skip
        with heavy_slot("a layer scan", expect_s=60.0 * runs, progress=progress):
            return _scan(
                loaded, model, layers, site, text, seq_len, cfg, do_sweep, seed, params, key, progress
            )

    # the default corpus's scans also go to disk (a user's text is kept in memory only)
    cache = _SCANS if use_disk_cache and text is None else _SCANS_MEMORY
    return cache.get_or_compute(key, compute)


def scan_key(model, layers, site, text, seq_len, params, do_sweep, seed) -> str:
    """Cache key of a layer scan (the backend is not part of it: a GPU run answers for the CPU too)."""
    return fingerprint(
        "sae-layer-scan", model, list(layers), site, text or "default-corpus", seq_len, params, do_sweep, seed
    )


def remember_scan(scan: LayerScan, key: str) -> None:
    """Put a scan computed elsewhere (the GPU bench) into the disk cache under its :func:`scan_key`."""
    from engine.cache import disk_put

    disk_put(_SCANS.namespace, _SCANS.key(key), scan.to_dict())
    _SCANS.clear()


def parse_layers(spec: str | None) -> list[int] | None:
    """``'all'`` (or empty) -> ``None`` (every layer); ``'0-5, 9'`` -> ``[0, 1, 2, 3, 4, 5, 9]``."""
    spec = (spec or "").strip().lower()
    if spec in ("", "all"):
        return None
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a or b - a > 1000:
                raise InputError(f"bad layer range {part!r}")
            out.update(range(a, b + 1))
        elif part.isdigit():
            out.add(int(part))
        else:
            raise InputError(f"layers must look like 'all', '0-29' or '0, 5, 10'; cannot read {part!r}")
    return sorted(out)


def _scan(
    loaded, model, layers, site, text, seq_len, cfg, do_sweep, seed, params, key, progress
) -> LayerScan:
    sw = Stopwatch()
    t0 = time.perf_counter()
    with sw("capture"):
        aset: ActivationSet = collect_activations(
            loaded,
            layers,
            site=site,
            text=text,
            max_activations=cfg.max_activations,
            seq_len=seq_len,
            progress=(lambda f, m: progress(0.1 * f, m)) if progress else None,
        )
    with sw("sae"):
        cols = scan_activations(
            aset.acts,
            cfg,
            do_sweep=do_sweep,
            seed=seed,
            progress=(lambda f, m: progress(0.1 + 0.9 * f, m)) if progress else None,
        )
    prov = Provenance(
        method="sae-layer-scan",
        params={
            **params,
            "sweep": do_sweep,
            "model": model,
            "layers": layers,
            "site": site,
            "seq_len": seq_len,
        },
        input_fingerprint=key,
        seed=seed,
        backend=_device(),
        timings={**sw.timings, "total": time.perf_counter() - t0},
    )
    return LayerScan(provenance=prov, model=model, site=site, n_activations=aset.n, **cols)


def sweep_settings(cfg: SAEConfig, do_sweep: bool = True) -> list[tuple[str, SAEConfig]]:
    """The default setting, then the one-at-a-time sweep around it."""
    settings = [("default", cfg)]
    if do_sweep:
        for name, factor in SWEEP:
            settings.append((f"{name} x{factor:g}", replace(cfg, **{name: getattr(cfg, name) * factor})))
    return settings


def scan_activations(
    acts: dict[int, torch.Tensor],
    cfg: SAEConfig,
    *,
    do_sweep: bool = True,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, list]:
    """Per-layer F, N, psi and the sweep band from already captured activations ``{layer: [N, d]}``.

    Layers of equal width and row count train together as one stack of independent SAEs
    (:func:`~.sae.train_sae_stack`), one stack per sweep setting: the same SAEs as one at a time, with far
    less per-step overhead (and on a GPU, far better use of it).
    """
    layers = sorted(acts)
    n = min(int(a.shape[0]) for a in acts.values())
    widths = {int(a.shape[1]) for a in acts.values()}
    settings = sweep_settings(cfg, do_sweep)
    per_layer: dict[int, list[dict[str, Any]]] = {layer: [] for layer in layers}
    groups = [layers] if len(widths) == 1 else [[layer] for layer in layers]
    total = len(settings) * len(groups)
    done = 0
    for label, c in settings:
        for group in groups:
            if progress is not None:
                progress(done / total, f"SAEs for {len(group)} layer(s): {label}")
            stack = torch.stack([acts[layer][:n] for layer in group])  # [k, n, d]

            def tick(ep, loss, done=done, label=label, k=len(group), cap=c.max_epochs):
                # train_sae_stack calls this every epoch and twice a second within one: a stop ends the scan
                if progress is not None:
                    progress((done + min(1.0, (ep + 1 if isinstance(ep, int) else ep) / cap)) / total,
                             f"SAEs for {k} layer(s): {label}, epoch {int(ep) + 1} of at most {cap}")  # fmt: skip

            trained = train_sae_stack(stack, c, seed=seed, device=device, progress=tick)
            for layer, tr in zip(group, trained):
                m, _, _ = measure_activations(acts[layer][:n], sae=tr.sae, config=c)
                m.update(
                    epochs=tr.epochs,
                    converged=tr.stopped_early,
                    setting=label,
                    l1=c.l1,
                    expansion=c.expansion,
                )
                per_layer[layer].append(m)
            done += 1
    out: dict[str, list] = {
        k: []
        for k in (
            "layers neurons effective_features psi f_low f_high explained_variance l0 dead_fraction epochs sweep"
        ).split()
    }
    for layer in layers:
        runs = per_layer[layer]
        base = runs[0]
        fs = [r["effective_features"] for r in runs]
        out["layers"].append(layer)
        out["neurons"].append(base["neurons"])
        out["effective_features"].append(base["effective_features"])
        out["psi"].append(base["psi"])
        out["f_low"].append(min(fs))
        out["f_high"].append(max(fs))
        out["explained_variance"].append(base["explained_variance"])
        out["l0"].append(base["l0"])
        out["dead_fraction"].append(base["dead_fraction"])
        out["epochs"].append(base["epochs"])
        out["sweep"].append(
            {
                "layer": layer,
                "runs": [
                    {
                        "setting": r["setting"],
                        "l1": r["l1"],
                        "expansion": r["expansion"],
                        "F": r["effective_features"],
                        "explained_variance": r["explained_variance"],
                        "epochs": r["epochs"],
                    }
                    for r in runs
                ],
            }
        )
    return out
