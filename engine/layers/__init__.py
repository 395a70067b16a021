"""Layer redundancy: LLM-Drop similarity scores and layer dropping (He et al., 2024, arXiv:2406.15786).

- :mod:`engine.layers.arch`: where the residual stream lives in Llama/Mistral/Qwen/GPT-2/BERT-style models.
- :mod:`engine.layers.scan`: attention/MLP/block similarity, hidden-state and head similarity, one pass per batch.
- :mod:`engine.layers.drop`: one-shot/iterative/random dropping with restore, and evaluation of the dropped model.
- :mod:`engine.layers.pipeline`: model + text -> cached scan -> plan of a registered drop method -> evaluation.
- :mod:`engine.layers.curve`: the family's comparison, perplexity vs sublayers dropped (:func:`compare`).
- :mod:`engine.layers.report`: what `redex layers` prints (:class:`LayersReport`).
- :mod:`engine.layers.reference`: the official code's layer-by-layer procedure, as a parity and speed reference.
"""

METHOD_MODULES = ("scan", "drop")
