"""3D Gaussian splatting: scene I/O, rendering, and pruning of redundant Gaussians.

Modules
-------
ply        -- :class:`GaussianScene`, the INRIA 3DGS PLY layout (any SH degree) and the ``.splat`` format.
cameras    -- pinhole cameras, orbit cameras from robust scene bounds, JSON I/O.
render     -- :func:`render`: gsplat's CUDA rasterizer on a GPU, a tile-binned torch renderer otherwise.
importance -- per-Gaussian blending weights and hit counts accumulated over many views.
prune      -- opacity, random, LightGaussian (paper and official-code forms), OMG, open3d voxel merge.
storage    -- bytes of a scene under fp16, SH degree reduction and OMG-style sub-vector quantisation.
metrics    -- PSNR and SSIM.
scene_gen  -- the procedural demo scene and its ground-truth ray tracer.
train      -- 3DGS training with gsplat (``python -m engine.splats.train``).

:data:`METHOD_MODULES` names the submodules that register methods, so :func:`engine.registry._load_all`
imports them when the registry is asked.
"""

METHOD_MODULES = ("prune",)
