"""Superposition family: how many features a layer represents, measured with sparse autoencoders.

Modules: :mod:`.metrics` (p, H, F = exp(H), psi), :mod:`.sae` (the paper's tied ReLU SAE, its training and
statistics), :mod:`.saelens_io` (SAELens files, read and written), :mod:`.activations` (hooks that capture a
layer's activations), :mod:`.toy` (Elhage et al.'s toy models as ground truth), :mod:`.feature_map` (UMAP of
decoder directions), :mod:`.measure` (registered per-layer and whole-model measurements, cached),
:mod:`.compare` (two or more measurements on the same corpus, cached).

Registered methods, by role: ``toy`` (toy-superposition), ``measure`` (sae-feature-count), ``scan``
(sae-layer-scan); the tab and ``redex sae`` pick them by role.
"""

METHOD_MODULES = ("toy", "measure")
