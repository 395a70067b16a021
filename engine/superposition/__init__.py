"""Superposition family: how many features a layer represents, measured with sparse autoencoders.

Modules: :mod:`.metrics` (p, H, F = exp(H), psi), :mod:`.sae` (the paper's tied ReLU SAE, training, SAELens
files), :mod:`.activations` (hooks that capture a layer's activations), :mod:`.toy` (Elhage et al.'s toy
models as ground truth), :mod:`.feature_map` (UMAP of decoder directions), :mod:`.measure` (registered
per-layer and whole-model measurements).
"""

METHOD_MODULES = ("toy", "measure")
