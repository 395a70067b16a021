"""One loading path for the shipped scene models and for hub vision models, with an in-process cache.

Built-ins (offline, from ``assets/vision``): ``scene-vit`` (the ViT alone) and ``scene-vlm`` (ViT + projector
+ Llama decoder). Any local directory or (with network allowed) Hugging Face id of a CLIP vision / CLIP,
ViT, DINOv2 or LLaVA(-1.5 style) checkpoint loads through the same two wrappers:

- :class:`VisionEncoder`: ``forward(pixel_values, output_attentions=..., output_hidden_states=...)``,
  ``preprocess(image)``, the patch grid, and ``n_prefix`` (tokens before the patches: CLS, registers).
- :class:`VisionLanguageModel`: ``image_embeds``, ``build`` (``inputs_embeds`` with an optional ``keep`` of
  image tokens) and ``answer``; ``lm`` takes ``inputs_embeds`` like any transformers causal LM, and
  ``lm_layers`` are the decoder layers for hooks.

Weights load from safetensors only; ``trust_remote_code=False`` always; eager attention so that
``output_attentions`` works. The model field is checked by :func:`engine.models.resolve_model_name` (the one
check: on a public deployment no server folder is consulted). A hub or folder model is loaded once (one lock per
name, so a slow download holds up no other model), inside a heavy-job slot, after its weights' memory estimate
passed :func:`engine.admission.check_memory`; loaded models are kept least-recently-used within
``LIMITS.model_cache_bytes``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.admission import check_memory, heavy_slot
from engine.config import LIMITS
from engine.config import allow_network as _allow_network_default
from engine.registry import InputError

log = logging.getLogger("redex.vision")

__all__ = [
    "ASSETS",
    "BUILTIN_VISION",
    "VisionEncoder",
    "VisionLanguageModel",
    "load_encoder",
    "load_vlm",
    "load_vision",
    "find_layers",
    "heavy_once",
    "weights_estimate",
]

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "vision"
BUILTIN_VISION = {
    "scene-vit": "the project's scene ViT (8 layers, 14x14 patches + CLS; assets/vision)",
    "scene-vlm": "the project's scene VLM (scene ViT -> MLP projector -> 8-layer Llama; assets/vision)",
}
_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class VisionEncoder:
    model: Any  # module: forward(pixel_values=..., output_attentions=..., output_hidden_states=...)
    layers: Any  # nn.ModuleList of encoder layers (for hooks)
    name: str
    kind: str  # "scene-vit", "clip", "vit", "dinov2"
    image_size: int
    patch_size: int
    n_prefix: int  # tokens before the patch tokens (CLS, registers)
    n_layers: int
    n_heads: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    device: str = "cpu"

    @property
    def grid(self) -> tuple[int, int]:
        g = self.image_size // self.patch_size
        return g, g

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_pixels(self, image01) -> Any:
        """Normalised ``pixel_values`` [B, 3, S, S] from images in [0, 1] ([B, 3, S, S] tensor, already sized)."""
        import torch

        x = torch.as_tensor(image01, dtype=torch.float32, device=self.device)
        mean = torch.tensor(self.mean, device=x.device)[:, None, None]
        std = torch.tensor(self.std, device=x.device)[:, None, None]
        return (x - mean) / std

    def preprocess(self, image: np.ndarray) -> Any:
        """``pixel_values`` [1, 3, S, S] from an RGB uint8 array [H, W, 3] of any size (resized to S x S)."""
        from PIL import Image

        if image.shape[:2] != (self.image_size, self.image_size):
            image = np.asarray(
                Image.fromarray(image).resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
            )
        x = image.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        return self.to_pixels(x)

    def forward(self, pixel_values, **kwargs):
        import torch

        with torch.no_grad():
            return self.model(pixel_values=pixel_values, **kwargs)


@dataclass
class VisionLanguageModel:
    encoder: VisionEncoder
    projector: Any  # module: features [B, N, d_vision] -> [B, N, d_lm]
    lm: Any  # causal LM taking inputs_embeds / position_ids (LlamaForCausalLM, LlavaForConditionalGeneration)
    lm_layers: Any  # nn.ModuleList of decoder layers (for hooks)
    name: str
    kind: str  # "scene-vlm" or "llava"
    feature_layer: int  # hidden_states index fed to the projector
    drop_cls: bool  # LLaVA's "default" strategy: drop the prefix tokens
    tokenizer: Any  # None for the scene VLM (its vocabulary is engine.vision.scenes.VOCAB)
    source: str
    n_layers: int
    n_heads: int
    image_token_index: int | None = None
    extra: dict = field(default_factory=dict)

    def image_embeds(self, pixel_values):
        """Projected image tokens [B, N, d_lm]."""
        import torch

        with torch.no_grad():
            out = self.encoder.model(pixel_values=pixel_values, output_hidden_states=True)
            feats = out.hidden_states[self.feature_layer]
            if self.drop_cls:
                feats = feats[:, self.encoder.n_prefix :]
            return self.projector(feats)

    def prefix_ids(self) -> list[int]:
        """Token ids before the image: ``<bos>`` for the scene VLM, the tokenised ``USER: `` for LLaVA."""
        if self.kind == "scene-vlm":
            from engine.vision import scenes

            return [scenes.TOKEN_ID["<bos>"]]
        if self.tokenizer is None:
            raise InputError(f"model {self.name!r} has no tokenizer in its folder")
        return list(self.tokenizer("USER: ", add_special_tokens=True)["input_ids"])

    def prompt_ids(self, question: str) -> tuple[list[int], list[int]]:
        """Token ids before and after the image for a question (the scene VLM: ``<bos>`` | padded question)."""
        if self.kind == "scene-vlm":
            from engine.vision import scenes

            words = _normalise_scene_question(question)
            unknown = sorted({w for w in words if w not in scenes.TOKEN_ID})
            if unknown:
                raise InputError(
                    f"the scene VLM knows only its scene vocabulary; unknown word(s) {unknown}. "
                    "Example: 'how many red objects ?'"
                )
            if not words or words[-1] != "?":
                words.append("?")
            if len(words) > scenes.QLEN:
                raise InputError(f"question too long for the scene VLM: {len(words)} > {scenes.QLEN} tokens")
            ids = [scenes.TOKEN_ID["<pad>"]] * (scenes.QLEN - len(words)) + scenes.encode(words)
            return [scenes.TOKEN_ID["<bos>"]], ids
        if self.tokenizer is None:
            raise InputError(f"model {self.name!r} has no tokenizer in its folder")
        post = self.tokenizer(f"\n{question} ASSISTANT:", add_special_tokens=False)["input_ids"]
        return self.prefix_ids(), list(post)

    def build(
        self, img_embeds, prefix: list[int], suffix: list[int], keep=None, keep_positions: bool = False
    ):
        """``inputs_embeds`` [B, T, d], ``position_ids`` [B, T] and the image span (start, stop) in the sequence.

        ``keep`` [B, n] patch indices: only those image tokens, in raster order, with compacted positions, or
        with the positions they had in the full sequence when ``keep_positions``.
        """
        import torch

        emb = self.lm.get_input_embeddings()
        B, dev = img_embeds.shape[0], img_embeds.device
        N = img_embeds.shape[1]
        if keep is not None:
            keep = torch.as_tensor(keep, device=dev).reshape(B, -1).sort(1).values
            img_embeds = torch.gather(img_embeds, 1, keep[..., None].expand(-1, -1, img_embeds.shape[-1]))
        pre = emb(torch.tensor(prefix, device=dev)[None].expand(B, -1))
        post = emb(torch.tensor(suffix, device=dev)[None].expand(B, -1))
        x = torch.cat([pre, img_embeds.to(pre.dtype), post], 1)
        pos = torch.arange(x.shape[1], device=dev)[None].expand(B, -1)
        if keep is not None and keep_positions:
            p0 = torch.arange(len(prefix), device=dev)[None].expand(B, -1)
            p2 = torch.arange(len(prefix) + N, len(prefix) + N + len(suffix), device=dev)[None].expand(B, -1)
            pos = torch.cat([p0, keep + len(prefix), p2], 1)
        return x, pos, (len(prefix), len(prefix) + img_embeds.shape[1])

    def decode(self, token_id: int) -> str:
        if self.kind == "scene-vlm":
            from engine.vision import scenes

            return scenes.VOCAB[int(token_id)]
        return self.tokenizer.decode([int(token_id)]).strip()

    def answer(self, pixel_values, question: str, *, keep=None, keep_positions: bool = False, **kwargs):
        """(answer text, LM output) for one image and question; ``kwargs`` pass to the LM."""
        import torch

        pre, post = self.prompt_ids(question)
        x, pos, _ = self.build(self.image_embeds(pixel_values), pre, post, keep, keep_positions)
        with torch.no_grad():
            out = self.lm(inputs_embeds=x, position_ids=pos, **kwargs)
        return self.decode(out.logits[0, -1].argmax()), out


def _normalise_scene_question(question: str) -> list[str]:
    """Words of a question in the scene template: plural shapes to singular ("circles" -> "circle"), "colour" ->
    "color", and "how many <shape|objects>" -> "how many the <shape|objects>" as the generator words it."""
    from engine.vision import scenes

    plural = {s + "s": s for s in scenes.SHAPES} | {"crosses": "cross", "colour": "color", "colours": "color"}
    words = [plural.get(w, w) for w in question.replace("?", " ?").lower().split()]
    if words[:2] == ["how", "many"] and len(words) > 2 and words[2] not in scenes.COLORS + ("the",):
        words.insert(2, "the")
    return words


# loaded models, least recently used first, within LIMITS.model_cache_bytes of weights (the newest always stays)
_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_HELD = threading.local()


@contextmanager
def heavy_once(what: str, *, expect_s: float = 60.0, progress=None) -> Iterator[None]:
    """:func:`engine.admission.heavy_slot`, taken once per thread: a heavy job that calls another heavy step (a
    comparison that loads a hub model, then runs it) holds one slot, never waits for a second one."""
    if getattr(_HELD, "depth", 0):
        _HELD.depth += 1
        try:
            yield
        finally:
            _HELD.depth -= 1
    else:
        with heavy_slot(what, expect_s=expect_s, progress=progress):
            _HELD.depth = 1
            try:
                yield
            finally:
                _HELD.depth = 0


def _weights(m) -> Any:
    """The torch module holding a loaded model's weights."""
    if isinstance(m, VisionLanguageModel):
        return m.extra.get("module") or m.lm
    return getattr(m, "extra_vit", None) or m.model


def _cache_put(key: tuple[str, str], m) -> None:
    from engine.sizes import module_bytes

    with _LOCK:
        _CACHE[key] = m
        _CACHE.move_to_end(key)
        while (
            len(_CACHE) > 1
            and sum(module_bytes(_weights(v)) for v in _CACHE.values()) > LIMITS.model_cache_bytes
        ):
            old, _ = _CACHE.popitem(last=False)
            log.info(
                "vision model %s evicted from the model cache (over %d bytes)",
                old[0],
                LIMITS.model_cache_bytes,
            )


def _tower_params(c) -> int:
    d, L = int(c.hidden_size), int(c.num_hidden_layers)
    m = getattr(c, "intermediate_size", None) or int(getattr(c, "mlp_ratio", 4) * d)
    patches = (int(getattr(c, "image_size", 224)) // int(getattr(c, "patch_size", 16))) ** 2
    return L * (4 * d * d + 2 * d * int(m)) + 3 * int(getattr(c, "patch_size", 16)) ** 2 * d + patches * d


def _lm_params(c) -> int:
    d, L, m, V = int(c.hidden_size), int(c.num_hidden_layers), int(c.intermediate_size), int(c.vocab_size)
    kv = int(getattr(c, "num_key_value_heads", None) or c.num_attention_heads) * (
        d // int(c.num_attention_heads)
    )
    return L * (2 * d * d + 2 * d * kv + 3 * d * m) + 2 * V * d


def weights_estimate(cfg) -> int:
    """Bytes the float32 weights of a model with transformers config ``cfg`` will take (from its sizes, before
    a byte is downloaded): the vision tower, and for LLaVA the projector and the language model, plus 10%."""
    if cfg.model_type == "llava":
        v, t = cfg.vision_config, cfg.text_config
        n = (
            _tower_params(v)
            + _lm_params(t)
            + int(v.hidden_size) * int(t.hidden_size)
            + int(t.hidden_size) ** 2
        )
    else:
        n = _tower_params(getattr(cfg, "vision_config", cfg))
    return int(n * 4 * 1.1)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _builtin_scene(name: str, folder: Path | None = None):
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, ViTConfig

    from engine.vision.vit import PIXEL_MEAN, PIXEL_STD, SceneViT
    from engine.vision.vlm import SceneVLM

    folder = Path(folder or ASSETS)
    need = ["vit.safetensors", "vit_config.json"] + (
        ["vlm.safetensors", "lm_config.json"] if name == "scene-vlm" else []
    )
    missing = [f for f in need if not (folder / f).exists()]
    if missing:
        raise InputError(f"the shipped model files {missing} are missing from {folder}")
    vcfg = ViTConfig.from_dict(json.loads((folder / "vit_config.json").read_text()))
    vcfg._attn_implementation = "eager"
    vit = SceneViT(vcfg)
    _load_strict(vit, load_file(str(folder / "vit.safetensors")), "vit.safetensors")
    dev = _device()
    vit.to(dev).eval()
    enc = VisionEncoder(
        model=_SceneViTPixels(vit), layers=find_layers(vit.vit), name="scene-vit", kind="scene-vit",
        image_size=vcfg.image_size, patch_size=vcfg.patch_size, n_prefix=1, n_layers=vcfg.num_hidden_layers,
        n_heads=vcfg.num_attention_heads, mean=PIXEL_MEAN, std=PIXEL_STD, source=str(folder / "vit.safetensors"),
        device=dev,
    )  # fmt: skip
    enc.extra_vit = vit  # the heads, for the ViT's own task
    if name == "scene-vit":
        return enc
    lcfg = LlamaConfig.from_dict(json.loads((folder / "lm_config.json").read_text()))
    lcfg._attn_implementation = "eager"
    vlm = SceneVLM(vit, lcfg)
    sd = load_file(str(folder / "vlm.safetensors"))
    sd["lm.lm_head.weight"] = sd["lm.model.embed_tokens.weight"]  # tied
    sd |= {f"vit.{k}": v for k, v in vit.state_dict().items()}
    _load_strict(vlm, sd, "vlm.safetensors")
    vlm.to(dev).eval()
    return VisionLanguageModel(
        encoder=enc, projector=vlm.projector, lm=vlm.lm, lm_layers=find_layers(vlm.lm), name="scene-vlm",
        kind="scene-vlm", feature_layer=SceneVLM.feature_layer, drop_cls=True, tokenizer=None,
        source=str(folder / "vlm.safetensors"), n_layers=lcfg.num_hidden_layers, n_heads=lcfg.num_attention_heads,
        extra={"module": vlm, "dtype": str(torch.float32)},
    )  # fmt: skip


def _load_strict(module, sd: dict, what: str) -> None:
    import torch

    sd = {k: v.to(torch.float32) for k, v in sd.items()}
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{what} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


class _SceneViTPixels:
    """Adapter so the scene ViT takes normalised ``pixel_values`` like hub encoders do."""

    def __init__(self, vit) -> None:
        self.vit = vit

    def __call__(self, pixel_values, **kwargs):
        return self.vit.vit(pixel_values=pixel_values, **kwargs)


def _resolve(name: str, allow_network: bool) -> tuple[str, bool, str]:
    """(path or hub id, local files only, description) of a model field that is not a built-in, through
    :func:`engine.models.resolve_model_name` (the one check of model ids)."""
    from engine.models import resolve_model_name

    kind, where = resolve_model_name(name, builtins=BUILTIN_VISION, allow_network=allow_network,
                                     what="vision model")  # fmt: skip
    if kind == "dir":
        return where, True, f"local directory {where}"
    if kind == "hub":
        return where, False, f"hub {where}"
    raise InputError(f"{name!r} is a built-in vision model; it loads from assets/vision")


def _hub(name: str, allow_network: bool, progress=None):
    from transformers import AutoConfig

    path, local_only, source = _resolve(name, allow_network)
    kw = dict(trust_remote_code=False, local_files_only=local_only)
    try:
        cfg = AutoConfig.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load {name!r}: {str(e).splitlines()[0]}") from None
    except Exception as e:  # noqa: BLE001 - a malformed config.json, a hub error: the user's model, not ours
        raise InputError(
            f"cannot load {name!r}: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        ) from None
    if not hasattr(cfg, "model_type") or cfg.model_type not in ("llava", "clip", "clip_vision_model", "vit",
                                                                 "dinov2"):  # fmt: skip
        raise InputError(
            f"{name!r} is a {getattr(cfg, 'model_type', '?')!r} model; the vision tabs take CLIP, ViT, DINOv2 and "
            "LLaVA models"
        )
    try:
        need = weights_estimate(cfg)
    except (AttributeError, TypeError, ValueError):
        need = 0
    check_memory(need, f"loading {name!r} (float32 weights)")
    with heavy_once(f"loading {name}", expect_s=60.0, progress=progress):
        if progress is not None:
            progress(0.05, f"loading {name} ({need / 1e9:.1f} GB of weights)")
        return _hub_load(name, path, cfg, source, kw)


def _hub_load(name: str, path: str, cfg, source: str, kw: dict):
    import torch

    mt = cfg.model_type
    dev = _device()
    try:
        if mt == "llava":
            from transformers import AutoTokenizer, LlavaForConditionalGeneration

            model = LlavaForConditionalGeneration.from_pretrained(
                path, dtype=torch.float32, attn_implementation="eager", use_safetensors=True, **kw
            )
            try:
                tok = AutoTokenizer.from_pretrained(path, **kw)
            except (OSError, ValueError):
                tok = None
            model.to(dev).eval()
            inner = model.model
            vt = inner.vision_tower
            enc = _wrap_encoder(vt, cfg.vision_config, name, source, dev)
            if cfg.vision_feature_select_strategy not in ("default", "full"):
                raise InputError(
                    f"unsupported vision_feature_select_strategy {cfg.vision_feature_select_strategy!r}"
                )
            layer = cfg.vision_feature_layer
            if not isinstance(layer, int):
                raise InputError("LLaVA models that concatenate several vision layers are not supported")
            tcfg = cfg.text_config
            return VisionLanguageModel(
                encoder=enc, projector=inner.multi_modal_projector, lm=model,
                lm_layers=find_layers(inner.language_model), name=name, kind="llava", feature_layer=layer,
                drop_cls=cfg.vision_feature_select_strategy == "default", tokenizer=tok, source=source,
                n_layers=tcfg.num_hidden_layers, n_heads=tcfg.num_attention_heads,
                image_token_index=getattr(cfg, "image_token_index", None),
            )  # fmt: skip
        if mt in ("clip", "clip_vision_model"):
            from transformers import CLIPVisionModel

            model = CLIPVisionModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager",
                                                    use_safetensors=True, **kw)  # fmt: skip
            vcfg = model.config
        elif mt in ("vit", "dinov2"):
            from transformers import AutoModel

            model = AutoModel.from_pretrained(path, dtype=torch.float32, attn_implementation="eager",
                                              use_safetensors=True, **kw)  # fmt: skip
            vcfg = model.config
        else:
            raise InputError(
                f"{name!r} is a {mt!r} model; the vision tabs take CLIP, ViT, DINOv2 and LLaVA models"
            )
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load {name!r}: {str(e).splitlines()[0]}") from None
    model.to(dev).eval()
    return _wrap_encoder(model, vcfg, name, source, dev)


_LAYER_PATHS = ("layers", "encoder.layer", "encoder.layers", "vision_model.encoder.layers",
                "vision_model.encoder.layer", "model.layers")  # fmt: skip


def find_layers(model):
    """The ModuleList of transformer layers (transformers moved ViT's from ``encoder.layer`` to ``layers``)."""
    from torch import nn

    for path in _LAYER_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    raise InputError(
        f"{type(model).__name__}: cannot find its transformer layers (looked for {_LAYER_PATHS})"
    )


def _wrap_encoder(model, vcfg, name: str, source: str, dev: str) -> VisionEncoder:
    mt = vcfg.model_type
    layers = find_layers(model)
    if mt in ("clip_vision_model", "clip"):
        mean, std, kind = _CLIP_MEAN, _CLIP_STD, "clip"
    elif mt == "vit":
        mean, std, kind = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "vit"
    elif mt == "dinov2":
        mean, std, kind = _IMAGENET_MEAN, _IMAGENET_STD, "dinov2"
    else:
        raise InputError(f"unsupported vision encoder type {mt!r}")
    return VisionEncoder(
        model=model, layers=layers, name=name, kind=kind, image_size=int(vcfg.image_size),
        patch_size=int(vcfg.patch_size), n_prefix=1, n_layers=int(vcfg.num_hidden_layers),
        n_heads=int(vcfg.num_attention_heads), mean=mean, std=std, source=source, device=dev,
    )  # fmt: skip


def load_vision(name: str = "scene-vlm", *, allow_network: bool | None = None, folder: Path | None = None,
                progress=None):  # fmt: skip
    """A :class:`VisionEncoder` or :class:`VisionLanguageModel` (cached per process).

    ``folder`` overrides where the built-in weights are read (tests, freshly trained weights). ``progress``
    (``progress(frac, desc)``) hears about a hub or folder model being loaded (and may stop the wait for a slot).
    """
    name = (name or "").strip()
    if not name:
        raise InputError("no vision model given")
    if len(name) > LIMITS.max_model_name_chars:
        raise InputError(
            f"the vision model name has {len(name):,} characters; a hub id has at most {LIMITS.max_model_name_chars}"
        )
    if allow_network is None:
        allow_network = _allow_network_default()
    key = (name, str(folder or ""))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # two requests for one model load it once; other models load meanwhile
        with _LOCK:
            if key in _CACHE:
                return _CACHE[key]
        m = _builtin_scene(name, folder) if name in BUILTIN_VISION else _hub(name, allow_network, progress)
        _cache_put(key, m)
        return m


def load_encoder(name: str = "scene-vit", **kwargs) -> VisionEncoder:
    """The vision encoder of any supported model (a VLM's vision tower for ``scene-vlm`` and LLaVA ids)."""
    m = load_vision(name, **kwargs)
    return m.encoder if isinstance(m, VisionLanguageModel) else m


def load_vlm(name: str = "scene-vlm", **kwargs) -> VisionLanguageModel:
    m = load_vision(name, **kwargs)
    if not isinstance(m, VisionLanguageModel):
        raise InputError(f"{name!r} is a vision encoder, not a vision-language model")
    return m
