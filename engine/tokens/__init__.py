"""Visual token pruning: which image tokens a vision-language model can do without.

Methods (each registered with ``family="tokens"``, see :mod:`engine.tokens.methods`): random keep, CLS
attention, FlowCut (inside the vision encoder), Turbo-style information degree and LLaVolta pooling (between the
projector and the LM), PyramidDrop and FastV (inside the LM). :mod:`engine.tokens.core` runs the scene VLM with
a pruning plan (a hook at a ViT layer, before the LM, or at an LM layer) and counts FLOPs;
:mod:`engine.tokens.evaluate` measures accuracy against kept fraction with random controls at the same place.
"""

METHOD_MODULES = ("methods",)
