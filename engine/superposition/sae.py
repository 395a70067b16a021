"""Sparse autoencoders: the tied ReLU SAE of Bereska et al. (2025), its training and its statistics.

The paper measures superposition with a *tied* sparse autoencoder (official ``TiedSparseAutoencoder``):

    z     = ReLU(x W_enc + b_enc)        # [B, d_sae]  codes
    x_hat = z W_enc^T                    # [B, d_in]   decoder = encoder transposed, no decoder bias
    loss  = MSE(x_hat, x) + lambda * mean |z|

trained with Adam (lr 1e-3, batch 128) on up to 10,000 activations, dictionary ``d_sae = 4 x d_in``,
``lambda = 0.1``, Xavier-uniform encoder weights, zero bias, and early stopping when the epoch's mean training
loss has not improved for ``patience = 10`` epochs (at most ``max_epochs = 300``), keeping the best epoch.

Deviations, each on purpose:

- The official code keeps the "best" state with ``state_dict().copy()``, a shallow copy whose tensors keep
  being updated in place, so the restored model is the last one, not the best. We deep-copy, so the best epoch
  is really restored (the two differ by at most ``patience`` epochs of a plateau).
- ``normalize="rms"`` (default) multiplies the activations by one scalar so that their mean square per
  element is 1 before training (SAELens' ``expected_average_only_in`` does the same). The paper trains on raw
  activations of small models; a language model's residual stream has norms in the hundreds that grow with
  depth, where lr 1e-3 diverges and a fixed lambda would mean something different at every layer. The scale is
  folded into the weights when saved, so a saved SAE is a plain SAELens SAE. ``normalize="none"`` is the
  paper's rule (used for the toy models, whose activations are already O(1)).
- ``min_delta`` (default 1e-3, relative) counts an epoch as an improvement only if it lowers the best loss by
  that fraction. The official criterion (any decrease) almost never fires on language-model activations, whose
  loss keeps creeping down by 1e-5 per epoch, so every SAE would run to the 300-epoch cap. Set
  ``min_delta=0`` for the paper's exact rule.

:class:`SparseAutoencoder` also runs pretrained SAEs (untied, ``standard`` / ``jumprelu`` / ``topk``); reading
and writing them in SAELens' on-disk format is :mod:`.saelens_io`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.registry import InputError

__all__ = [
    "SAEConfig",
    "SparseAutoencoder",
    "TrainedSAE",
    "SAEStats",
    "train_sae",
    "train_sae_stack",
    "sae_stats",
    "check_activations",
    "DENSE_THRESHOLD",
]

DENSE_THRESHOLD = 0.1  # a feature active on more than 10% of samples counts as dense
TICK_S = 0.5  # seconds between progress calls inside an epoch (each call may stop the job)
MIN_ACTIVATIONS = 256  # fewer samples than this cannot train a dictionary worth measuring


@dataclass(frozen=True)
class SAEConfig:
    expansion: float = 4.0  # d_sae = expansion * d_in (paper: 4)
    l1: float = 0.1  # lambda, weight of mean |z| in the loss (paper: 0.1)
    lr: float = 1e-3  # Adam learning rate (paper: 1e-3)
    batch_size: int = 128  # (paper: 128)
    max_epochs: int = 300  # epoch cap (official default n_epochs=300)
    patience: int = 10  # epochs without improvement before stopping (official: 10)
    min_delta: float = 1e-3  # relative improvement that counts (official: 0; see module docstring)
    max_activations: int = 10_000  # training samples kept (paper: up to 10k)
    normalize: str = "rms"  # "rms": scale inputs to unit mean square per element; "none": raw (paper)


class SparseAutoencoder(nn.Module):
    """A one-layer sparse autoencoder, tied (trained here) or untied (loaded from SAELens).

    Parameters are named as in SAELens. For a tied SAE only ``weight`` [d_sae, d_in] is stored and
    ``W_enc = weight.T``, ``W_dec = weight``; ``b_dec`` is a zero buffer (the paper's decoder has no bias).
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        *,
        tied: bool = True,
        architecture: str = "standard",
        apply_b_dec_to_input: bool = False,
        k: int | None = None,
    ) -> None:
        super().__init__()
        if architecture not in ("standard", "jumprelu", "topk"):
            raise InputError(f"SAE architecture {architecture!r} is not supported (standard, jumprelu, topk)")
        self.d_in, self.d_sae, self.tied = int(d_in), int(d_sae), tied
        self.scale = 1.0  # inputs are multiplied by this before encoding, outputs divided after decoding
        self.architecture, self.apply_b_dec_to_input, self.k = architecture, apply_b_dec_to_input, k
        if tied:
            self.weight = nn.Parameter(torch.empty(self.d_sae, self.d_in))  # [d_sae, d_in]
            nn.init.xavier_uniform_(self.weight)
            self.register_buffer("b_dec", torch.zeros(self.d_in))
        else:
            self.W_enc_ = nn.Parameter(torch.zeros(self.d_in, self.d_sae))  # [d_in, d_sae]
            self.W_dec_ = nn.Parameter(torch.zeros(self.d_sae, self.d_in))  # [d_sae, d_in]
            self.b_dec = nn.Parameter(torch.zeros(self.d_in))
        self.b_enc = nn.Parameter(torch.zeros(self.d_sae))
        if architecture == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(self.d_sae))

    @property
    def W_enc(self) -> torch.Tensor:  # [d_in, d_sae]
        return self.weight.T if self.tied else self.W_enc_

    @property
    def W_dec(self) -> torch.Tensor:  # [d_sae, d_in]
        return self.weight if self.tied else self.W_dec_

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] -> codes [..., d_sae] (non-negative)."""
        x = x * self.scale
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        if self.tied:
            pre = F.linear(x, self.weight, self.b_enc)  # weight is [out, in] already: no transpose copy
        else:
            pre = x @ self.W_enc_ + self.b_enc
        if self.architecture == "jumprelu":
            return pre * (pre > self.threshold)
        if self.architecture == "topk":
            vals, idx = torch.topk(pre, int(self.k), dim=-1)
            return torch.zeros_like(pre).scatter_(-1, idx, F.relu(vals))
        return F.relu(pre)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """codes [..., d_sae] -> reconstruction [..., d_in]."""
        return (z @ self.W_dec + self.b_dec) / self.scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decode(z)


def check_activations(acts: torch.Tensor, *, min_count: int = MIN_ACTIVATIONS) -> torch.Tensor:
    """Validate a [N, d] activation matrix; raise :class:`InputError` naming the problem."""
    if not isinstance(acts, torch.Tensor):
        acts = torch.as_tensor(np.asarray(acts))
    if acts.ndim != 2:
        raise InputError(f"activations must be a [samples, width] matrix, got shape {tuple(acts.shape)}")
    if acts.shape[0] < min_count:
        raise InputError(
            f"too few activations: {acts.shape[0]} samples, need at least {min_count} to train an SAE "
            "(use more text, more samples or a longer window)"
        )
    if not bool(torch.isfinite(acts).all()):
        bad = int((~torch.isfinite(acts)).any(dim=1).sum())
        raise InputError(f"activations contain NaN or infinite values ({bad} of {acts.shape[0]} samples)")
    return acts.float()


@dataclass
class TrainedSAE:
    sae: SparseAutoencoder
    config: SAEConfig
    losses: list[float]  # mean training loss per epoch
    recon_losses: list[float]  # mean reconstruction MSE per epoch
    epochs: int  # epochs run until the stopping rule fired (or max_epochs)
    best_epoch: int  # 0-based epoch whose weights are kept
    stopped_early: bool  # True when the patience rule fired (converged), False when max_epochs ran out
    seconds: float
    device: str = "cpu"


def train_sae(
    acts: torch.Tensor,
    config: SAEConfig = SAEConfig(),
    *,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> TrainedSAE:
    """Train the paper's tied ReLU SAE on ``acts`` [N, d_in] (the first ``config.max_activations`` rows).

    ``progress(epoch, loss)`` is called after every epoch, and within an epoch at least every
    ``TICK_S`` seconds with the fractional epoch (see :func:`train_sae_stack`). Raises :class:`InputError` for
    too few or non-finite activations.
    """
    acts = check_activations(acts)
    return train_sae_stack(acts[None], config, seed=seed, device=device, progress=progress)[0]


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads. Small-tensor loops (toy models, narrow SAEs) run several times
    faster on one thread than on two busy ones, where OpenMP's barrier waits dominate each tiny kernel.

    With torch's OpenMP backend the count is per calling thread (``omp_set_num_threads`` sets the calling
    thread's value), so each block saves and restores its own thread's count: concurrent requests on other
    threads are not affected, and overlapping blocks cannot leave another thread on one thread."""
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, min(n, saved)))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def train_sae_stack(
    acts: torch.Tensor,
    config: SAEConfig = SAEConfig(),
    *,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> list[TrainedSAE]:
    """Train ``k`` independent tied SAEs at once on ``acts`` [k, N, d_in] (one data set each).

    ``progress(epoch, loss)`` is called after every epoch (``epoch`` 0-based, ``loss`` the mean over the
    instances) and, in between, every ``TICK_S`` seconds with a fractional ``epoch`` and the last epoch's loss,
    so a stop request (the callback raising) ends even a long epoch within about a second. Whatever it raises
    propagates; nothing shared is left changed (the thread count is restored).

    The instances share nothing but the batch order: the loss is the sum of the per-instance losses, so each
    instance's gradient (and Adam's per-element state) is its own. Each instance has its own early-stopping
    clock and keeps its own best epoch; training ends when every instance has stopped. :func:`train_sae` is
    the ``k = 1`` case. Used for the toy-model sweep, where many small SAEs would otherwise each pay Python's
    per-step overhead.
    """
    if acts.ndim != 3:
        raise InputError(f"stacked activations must be [instances, samples, width], got {tuple(acts.shape)}")
    for i in range(acts.shape[0]):
        check_activations(acts[i])
    if config.expansion < 1:
        raise InputError(
            f"expansion must be >= 1 (the dictionary must be at least as wide), got {config.expansion}"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    x = acts[:, : config.max_activations].float().to(device)  # [k, n, d_in]
    k, n, d_in = x.shape
    if config.normalize not in ("rms", "none"):
        raise InputError(f"normalize must be 'rms' or 'none', got {config.normalize!r}")
    if config.normalize == "rms":  # one scalar per instance: mean square per element becomes 1
        scale = x.pow(2).mean(dim=(1, 2), keepdim=True).clamp_min(1e-12).rsqrt()  # [k, 1, 1]
    else:
        scale = torch.ones(k, 1, 1, device=device)
    x = x * scale
    d_sae = int(round(d_in * config.expansion))
    gen = torch.Generator().manual_seed(seed)
    bound = math.sqrt(6.0 / (d_in + d_sae))  # Xavier-uniform, as the official encoder init
    weight = ((torch.rand(k, d_sae, d_in, generator=gen) * 2 - 1) * bound).to(device).requires_grad_()
    b_enc = torch.zeros(k, 1, d_sae, device=device, requires_grad=True)
    opt = torch.optim.Adam([weight, b_enc], lr=config.lr)
    bs = int(config.batch_size)
    n_batches = math.ceil(n / bs)
    best = torch.full((k,), math.inf, dtype=torch.float64)
    best_epoch = torch.zeros(k, dtype=torch.long)
    best_w, best_b = weight.detach().clone(), b_enc.detach().clone()
    stop_epoch = torch.full((k,), -1, dtype=torch.long)
    losses, recons = [], []
    t0 = last_tick = time.perf_counter()
    epoch = -1
    small = k * bs * d_in * d_sae < 20_000_000  # per-step work too small to split over threads
    with torch_threads(1 if small and device == "cpu" else torch.get_num_threads()):
        for epoch in range(int(config.max_epochs)):
            perm = torch.randperm(n, generator=gen).to(device)
            tot = torch.zeros(k, device=device)
            rec = torch.zeros(k, device=device)
            for i in range(n_batches):
                if progress is not None and time.perf_counter() - last_tick > TICK_S:
                    progress(epoch + i / n_batches, float(losses[-1][0]) if losses else float("nan"))
                    last_tick = time.perf_counter()
                xb = x[:, perm[i * bs : (i + 1) * bs]]  # [k, b, d_in]
                z = F.relu(torch.baddbmm(b_enc, xb, weight.transpose(1, 2)))  # [k, b, d_sae]
                mse = ((torch.bmm(z, weight) - xb) ** 2).mean(dim=(1, 2))  # [k]
                loss_k = mse + config.l1 * z.abs().mean(dim=(1, 2))
                opt.zero_grad(set_to_none=True)
                loss_k.sum().backward()
                opt.step()
                tot += loss_k.detach()
                rec += mse.detach()
            cur = (tot / n_batches).double().cpu()
            losses.append(cur.tolist())
            recons.append((rec / n_batches).double().cpu().tolist())
            if progress is not None:
                progress(epoch, float(cur.mean()))
                last_tick = time.perf_counter()
            if not bool(torch.isfinite(cur).all()):
                raise InputError("SAE training diverged (loss is not finite); try a smaller learning rate")
            active = stop_epoch < 0
            improved = active & (cur < best * (1.0 - config.min_delta))
            if bool(improved.any()):
                idx = improved.nonzero().flatten().to(device)
                with torch.no_grad():
                    best_w[idx] = weight.detach()[idx]
                    best_b[idx] = b_enc.detach()[idx]
                best = torch.where(improved, cur, best)
                best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
            newly = active & ~improved & (epoch - best_epoch >= config.patience)
            stop_epoch = torch.where(newly, torch.full_like(stop_epoch, epoch), stop_epoch)
            if bool((stop_epoch >= 0).all()):
                break
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = []
    for j in range(k):
        sae = SparseAutoencoder(d_in, d_sae, tied=True).to(device)
        with torch.no_grad():
            sae.weight.copy_(best_w[j])
            sae.b_enc.copy_(best_b[j, 0])
        sae.scale = float(scale[j])
        ran = int(stop_epoch[j]) + 1 if stop_epoch[j] >= 0 else epoch + 1
        out.append(
            TrainedSAE(
                sae=sae.eval(),
                config=config,
                losses=[ep[j] for ep in losses[:ran]],
                recon_losses=[ep[j] for ep in recons[:ran]],
                epochs=ran,
                best_epoch=int(best_epoch[j]),
                stopped_early=bool(stop_epoch[j] >= 0),
                seconds=seconds,
                device=device,
            )
        )
    return out


@dataclass
class SAEStats:
    mse: float  # mean squared reconstruction error per element
    explained_variance: float  # 1 - SSE / total sum of squares about the mean
    l0: float  # mean number of active codes per sample
    dead_fraction: float  # features never active on these samples
    dense_fraction: float  # features active on more than DENSE_THRESHOLD of samples
    mean_abs: np.ndarray  # [d_sae] mean |z_i| (the paper's p before normalising)
    freq: np.ndarray  # [d_sae] fraction of samples with z_i > 0


@torch.no_grad()
def sae_stats(sae: SparseAutoencoder, acts: torch.Tensor, *, batch_size: int = 2048) -> SAEStats:
    """Reconstruction and sparsity statistics of ``sae`` on ``acts`` [N, d_in], computed in batches."""
    acts = check_activations(acts, min_count=1)
    if acts.shape[1] != sae.d_in:
        raise InputError(f"the SAE expects width {sae.d_in}, the activations have width {acts.shape[1]}")
    dev = next(sae.parameters()).device
    n = acts.shape[0]
    mean = acts.double().mean(dim=0)
    sse = sst = 0.0
    abs_sum = torch.zeros(sae.d_sae, dtype=torch.float64)
    act_count = torch.zeros(sae.d_sae, dtype=torch.float64)
    l0 = 0.0
    for i in range(0, n, batch_size):
        xb = acts[i : i + batch_size].to(dev)
        z, xh = sae(xb)
        sse += float(((xh - xb).double() ** 2).sum())
        sst += float(((xb.double().cpu() - mean) ** 2).sum())
        abs_sum += z.abs().double().sum(dim=0).cpu()
        active = (z > 0).double()
        act_count += active.sum(dim=0).cpu()
        l0 += float(active.sum())
    freq = (act_count / n).numpy()
    return SAEStats(
        mse=sse / (n * sae.d_in),
        explained_variance=1.0 - sse / sst if sst > 0 else float("nan"),
        l0=l0 / n,
        dead_fraction=float((act_count == 0).double().mean()),
        dense_fraction=float((freq > DENSE_THRESHOLD).mean()),
        mean_abs=(abs_sum / n).numpy(),
        freq=freq,
    )
