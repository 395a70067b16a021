"""Graph summarisation: SSumM (Lee et al., KDD 2020) and the baselines it is compared against.

Modules
-------
io          -- :class:`Graph` (undirected, simple), built-in graphs, generators, uploaded edge lists.
costs       -- bit costs of the summary model and the reconstruction errors (L1 / L2) of a summary.
summary     -- :class:`GraphSummaryResult` (shared by every method), :func:`make_result`, the summary graph
               download (:class:`SummaryGraph`).
merge_state -- the numba merge state (pair table, neighbour lists, costs) SSumM and SAA-Gs merge supernodes in.
ssumm       -- the SSumM search (min-hash groups, MDL saving, sparsification), L1 and L2 variants.
baselines   -- random merge and SAA-Gs (LeFevre & Terzi, SDM 2010) at the same bit budget.
compare     -- run a registered method by name (:func:`summarize`), and :func:`compare` every method across
               budgets on one graph (a cached :class:`GraphComparison`).

Imports run one way: io <- costs <- summary, merge_state <- ssumm, baselines; compare reaches the methods only
through the registry. :data:`METHOD_MODULES` names the submodules that register methods, so
:func:`engine.registry.by_family` imports them (and only them) when asked for this family.
"""

METHOD_MODULES = ("ssumm", "baselines")
