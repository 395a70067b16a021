"""The effective-feature count of Bereska et al. (2025), "Superposition as Lossy Compression".

Given the codes ``z`` of a sparse autoencoder over a batch of activations (one row per sample, one column per
dictionary feature), the share of activation mass that feature ``i`` carries is

    p_i = mean_samples |z_i| / sum_j mean_samples |z_j|

The paper (and its official code, ``calculate_feature_metrics``) adds ``1e-10`` to every ``p_i`` and
renormalises, so that ``ln 0`` never occurs and a dead feature contributes (almost) nothing. The Shannon
entropy ``H = -sum p ln p`` (nats) gives the effective number of features ``F = exp(H)``: ``F`` equals ``k``
exactly when ``k`` features carry equal mass and the rest none. The superposition ratio is ``psi = F / N`` for a
layer of ``N`` neurons; ``psi > 1`` means the layer represents more features than it has dimensions.

For convolutional activations ``[B, C, H, W]`` the codes are summed over space per image before ``p`` is
taken (the official ``measure_superposition``); :func:`feature_distribution` accepts ``[B, ..., D]`` codes and
sums over every axis between the first and the last to do the same.

References
----------
L. Bereska, Z. Tzifa-Kratira, R. Samavi, E. Gavves. "Superposition as Lossy Compression: Measure with Sparse
Autoencoders and Connect to Adversarial Vulnerability", 2025. Code: github.com/leonardbereska/superposition-measurement
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EPS", "FeatureCount", "feature_distribution", "entropy", "effective_features", "feature_count"]

EPS = 1e-10  # added to every p_i before renormalising, as in the official code


@dataclass(frozen=True)
class FeatureCount:
    entropy: float  # H in nats
    effective_features: float  # F = exp(H)
    neurons: int  # N, width of the measured layer
    psi: float  # F / N

    def to_dict(self) -> dict[str, float]:
        return {
            "entropy": self.entropy,
            "effective_features": self.effective_features,
            "neurons": self.neurons,
            "psi": self.psi,
        }


def feature_distribution(codes) -> np.ndarray:
    """Activation-mass distribution ``p`` over dictionary features.

    Parameters
    ----------
    codes : array-like or torch.Tensor, shape [B, ..., D]
        SAE codes; axes between the first and the last (space for conv layers) are summed per sample.

    Returns
    -------
    p : ndarray [D], float64, sums to 1 (``EPS`` added and renormalised).
    """
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().double().numpy()
    z = np.asarray(codes, dtype=np.float64)
    if z.ndim < 2:
        raise ValueError(f"codes must be [samples, ..., features], got shape {z.shape}")
    if z.ndim > 2:
        z = z.reshape(z.shape[0], -1, z.shape[-1]).sum(axis=1)
    if not np.all(np.isfinite(z)):
        raise ValueError("codes contain NaN or infinite values")
    mass = np.abs(z).mean(axis=0)
    total = mass.sum()
    if not total > 0:
        raise ValueError("every SAE code is zero on these samples: no feature is active, so F is undefined")
    p = mass / total
    p = p + EPS
    return p / p.sum()


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in nats of a probability vector (zeros contribute 0)."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def effective_features(p: np.ndarray) -> float:
    """``F = exp(H(p))``."""
    return float(np.exp(entropy(p)))


def feature_count(codes, neurons: int) -> FeatureCount:
    """``H``, ``F`` and ``psi = F / N`` from SAE codes of a layer with ``neurons`` units."""
    p = feature_distribution(codes)
    h = entropy(p)
    f = float(np.exp(h))
    return FeatureCount(entropy=h, effective_features=f, neurons=int(neurons), psi=f / max(int(neurons), 1))
