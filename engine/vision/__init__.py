"""The vision models the project trains and ships, their data, and loaders for hub vision models.

- :mod:`engine.vision.scenes`: a deterministic generator of synthetic scenes with object masks per patch and
  question/answer pairs (counting, colour, shape, existence, all, relative position).
- :mod:`engine.vision.vit`: the scene ViT (a transformers ``ViTModel`` with a CLS token, 14x14 patches) and
  its training heads.
- :mod:`engine.vision.vlm`: the LLaVA-style scene VLM: frozen ViT -> 2-layer MLP projector -> a Llama decoder
  fed through ``inputs_embeds``.
- :mod:`engine.vision.loading`: one loading path for the shipped models and for hub CLIP / ViT / DINOv2 /
  LLaVA checkpoints (``trust_remote_code=False`` always).
- :mod:`engine.vision.images`: safe image loading and validation.
- :mod:`engine.vision.train`: the training script (``python -m engine.vision.train``; its flags are the fields of
  ``TrainConfig``).
- :mod:`engine.vision.evaluate`: validation accuracy and latency of the scene models (after training, and in
  ``bench/vision.py``).

No method is registered here (the methods live in :mod:`engine.flow` and the token-pruning family).
"""

METHOD_MODULES: tuple[str, ...] = ()
