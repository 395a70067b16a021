"""Graph summarisation: SSumM (Lee et al., KDD 2020) and the baselines it is compared against.

Modules
-------
io        -- :class:`Graph` (undirected, simple), built-in graphs, generators, uploaded edge lists.
costs     -- bit costs of the summary model and the reconstruction errors (L1 / L2) of a summary.
ssumm     -- the SSumM engine (numba), its L1 and L2 variants, and the shared summary result.
baselines -- random merge and SAA-Gs (LeFevre & Terzi, SDM 2010) at the same bit budget.

:data:`METHOD_MODULES` names the submodules that register methods, so :func:`engine.registry._load_all`
imports them when the registry is asked.
"""

METHOD_MODULES = ("ssumm", "baselines")
