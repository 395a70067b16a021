"""Deterministic synthetic scenes with object masks per patch and question/answer pairs.

Why this data: the project ships vision models it trained itself (no pretrained weights can be downloaded), and
the token-pruning methods need a test where dropping image tokens really costs something. So the scenes hold
*many* objects (6-10) that are each at least two patches across (radius 9-14 px on a 112 px image, patch 8 px,
a 14x14 grid), and the questions need every object (counting, "are all ...") or relations between two objects
(left of / above), beside colour, shape and existence questions.

A scene: a textured, low-saturation background (stripes, a gradient and pixel noise), 0-4 grey distractor
blobs smaller than a patch, then the objects drawn in random depth order. Objects sit in distinct cells of a
4x4 grid with a jitter, so neighbours can overlap (occlusion) but no object is hidden whole. Object
colours: red, green, blue, yellow, magenta, cyan; shapes: circle, square, triangle, diamond, cross; sizes:
small, large.

Determinism: scene ``i`` of a split depends only on ``(split seed, i)``. Parameters are drawn with numpy in
chunks of :data:`CHUNK` scenes (``default_rng([seed, chunk])``); pixel noise comes from an integer hash of
(scene seed, pixel, channel) computed in torch, so the same scene renders to the same pixels on CPU and GPU
(up to float rounding on object edges).

Every question is :data:`QLEN` tokens of a small closed vocabulary (:data:`VOCAB`), left-padded with
``<pad>``; its answer is one token. :func:`make_batch` returns the images, the object table, the visible
object id per pixel, the coverage of every object in every patch (for pruning studies: did a kept patch
touch the object?), and six questions per scene, one of each type in :data:`QTYPES` (colour, shape and
relation questions fall back to a counting question when the scene has no unambiguous target; their
``qtype`` then says "count").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IMAGE_SIZE",
    "PATCH",
    "GRID",
    "COLORS",
    "COLOR_RGB",
    "SHAPES",
    "SIZES",
    "QTYPES",
    "VOCAB",
    "TOKEN_ID",
    "QLEN",
    "MAX_OBJECTS",
    "SPLIT_SEEDS",
    "SceneBatch",
    "make_batch",
    "scene_params",
    "decode",
    "encode",
    "answer_ids",
]

IMAGE_SIZE = 112  # pixels, square
PATCH = 8  # ViT patch size in pixels
GRID = IMAGE_SIZE // PATCH  # 14 x 14 patches
MAX_OBJECTS = 10
CELLS = 4  # objects sit in distinct cells of a CELLS x CELLS grid
CHUNK = 64  # scene parameters are drawn per chunk of this many scenes
SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}

COLORS = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLOR_RGB = np.array(
    [[220, 40, 40], [40, 170, 60], [45, 85, 225], [235, 210, 40], [205, 60, 205], [40, 205, 215]],
    dtype=np.float32,
)
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
SIZES = ("small", "large")
RELATIONS = ("left", "right", "above", "below")
QTYPES = ("count", "colour", "shape", "exist", "all", "relation")
QLEN = 10  # question tokens, left-padded

VOCAB = (
    ("<pad>", "<bos>", "<img>", "?", "how", "many", "what", "color", "shape", "is", "the", "there", "a")
    + ("are", "all", "of", "object", "objects", "yes", "no")
    + COLORS
    + SHAPES
    + SIZES
    + RELATIONS
    + tuple(str(i) for i in range(MAX_OBJECTS + 1))
)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}


def encode(words: list[str] | str) -> list[int]:
    """Token ids of a question (words separated by spaces); unknown words raise ``KeyError``."""
    if isinstance(words, str):
        words = words.split()
    return [TOKEN_ID[w] for w in words]


def decode(ids) -> str:
    """Text of token ids, padding left out."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != TOKEN_ID["<pad>"])


def answer_ids() -> dict[str, list[int]]:
    """The answer tokens each question type can have (for a constrained argmax)."""
    nums = [TOKEN_ID[str(i)] for i in range(MAX_OBJECTS + 1)]
    yn = [TOKEN_ID["yes"], TOKEN_ID["no"]]
    return {
        "count": nums,
        "colour": [TOKEN_ID[c] for c in COLORS],
        "shape": [TOKEN_ID[s] for s in SHAPES],
        "exist": yn,
        "all": yn,
        "relation": yn,
    }


@dataclass
class SceneBatch:
    """A batch of scenes. ``B`` scenes, ``K = MAX_OBJECTS`` object slots, ``Q = len(QTYPES)`` questions each."""

    images: object  # torch float32 [B, 3, H, W] in [0, 1]
    present: np.ndarray  # bool [B, K]  slot holds an object
    shape: np.ndarray  # int [B, K]  index into SHAPES
    color: np.ndarray  # int [B, K]  index into COLORS
    size: np.ndarray  # int [B, K]  index into SIZES
    center: np.ndarray  # float [B, K, 2]  (x, y) in pixels
    radius: np.ndarray  # float [B, K]
    visible: object  # torch int64 [B, H, W]  slot of the object seen at each pixel, -1 background
    coverage: object  # torch float32 [B, K, GRID*GRID]  fraction of each patch showing each object
    questions: np.ndarray  # int64 [B, Q, QLEN] token ids
    answers: np.ndarray  # int64 [B, Q] answer token id
    qtypes: np.ndarray  # int64 [B, Q] index into QTYPES (after fallbacks)
    index: np.ndarray  # int64 [B] scene index within its split

    def __len__(self) -> int:
        return len(self.index)

    def question_text(self, b: int, q: int) -> str:
        return decode(self.questions[b, q])

    def answer_text(self, b: int, q: int) -> str:
        return VOCAB[int(self.answers[b, q])]

    def image_uint8(self, b: int = 0) -> np.ndarray:
        """Scene ``b`` as an RGB uint8 array ``[H, W, 3]`` (what an uploaded photo becomes after loading)."""
        return (self.images[b].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)

    def objects_touched(self, kept_patches, b: int) -> float:
        """Share of scene ``b``'s objects with at least one visible pixel in a kept patch."""
        cov = np.asarray(self.coverage[b].cpu() if hasattr(self.coverage, "cpu") else self.coverage)
        seen = cov.sum(1) > 0
        kept = np.zeros(cov.shape[1], bool)
        kept[np.asarray(kept_patches, dtype=int)] = True
        hit = (cov[:, kept] > 0).any(1)
        return float(hit[seen].mean()) if seen.any() else 1.0


# ----------------------------------------------------------------------------------------------- parameters
def _chunk_params(seed: int, chunk: int) -> dict[str, np.ndarray]:
    """Parameters of CHUNK scenes, vectorised over scenes and slots; depends only on (seed, chunk)."""
    rng = np.random.default_rng([seed, chunk])
    n, k = CHUNK, MAX_OBJECTS
    count = rng.integers(6, MAX_OBJECTS + 1, n)  # objects per scene
    cells = np.argsort(rng.random((n, CELLS * CELLS)), axis=1)[:, :k]  # distinct cells
    present = np.arange(k)[None, :] < count[:, None]
    size = rng.integers(0, 2, (n, k))
    radius = np.where(size == 1, rng.uniform(12.0, 14.0, (n, k)), rng.uniform(9.0, 10.5, (n, k)))
    cell = IMAGE_SIZE / CELLS
    cx = (cells % CELLS + 0.5) * cell + rng.uniform(-6, 6, (n, k))
    cy = (cells // CELLS + 0.5) * cell + rng.uniform(-6, 6, (n, k))
    cx = np.clip(cx, radius + 1, IMAGE_SIZE - radius - 1)
    cy = np.clip(cy, radius + 1, IMAGE_SIZE - radius - 1)
    return {
        "present": present,
        "shape": rng.integers(0, len(SHAPES), (n, k)),
        "color": rng.integers(0, len(COLORS), (n, k)),
        "size": size,
        "radius": radius,
        "center": np.stack([cx, cy], -1),
        "bright": rng.uniform(0.82, 1.08, (n, k)),
        # background: grey level, tint, stripe amplitude / frequency / angle / phase, gradient
        "bg_level": rng.uniform(70, 185, n),
        "bg_tint": rng.uniform(-18, 18, (n, 3)),
        "bg_amp": rng.uniform(0, 28, n),
        "bg_freq": rng.uniform(0.03, 0.25, n),
        "bg_angle": rng.uniform(0, np.pi, n),
        "bg_phase": rng.uniform(0, 2 * np.pi, n),
        "bg_grad": rng.uniform(-40, 40, (n, 2)),
        "noise_amp": rng.uniform(4, 16, n),
        # distractors: small grey blobs, under a patch across
        "n_distract": rng.integers(0, 5, n),
        "d_center": rng.uniform(4, IMAGE_SIZE - 4, (n, 4, 2)),
        "d_radius": rng.uniform(1.5, 3.5, (n, 4)),
        "d_level": rng.uniform(20, 235, (n, 4)),
        "noise_seed": rng.integers(0, 2**31 - 1, n),
        # question randomness
        "q_rand": rng.random((n, 16)),
        "q_perm": rng.random((n, 8, 32)),
    }


def scene_params(split: str | int, start: int, count: int) -> dict[str, np.ndarray]:
    """Parameters of scenes ``start .. start+count-1`` of a split (a name in SPLIT_SEEDS or an int seed)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    seed = SPLIT_SEEDS[split] if isinstance(split, str) else int(split)
    first, last = start // CHUNK, (start + count - 1) // CHUNK
    parts = [_chunk_params(seed, c) for c in range(first, last + 1)]
    off = start - first * CHUNK
    out = {key: np.concatenate([p[key] for p in parts])[off : off + count] for key in parts[0]}
    out["index"] = np.arange(start, start + count)
    return out


# ----------------------------------------------------------------------------------------------- questions
def _pick(valid: np.ndarray, rand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A random valid column per row (``rand`` [B, M] uniform) and whether the row had one."""
    score = np.where(valid, rand[:, : valid.shape[1]] + 1.0, -1.0)
    return score.argmax(1), valid.any(1)


def _questions(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six questions per scene, vectorised over scenes. May recolour objects for the 'all' question."""
    P, S, C, Z = p["present"], p["shape"], p["color"], p["size"]
    B = len(P)
    r, perm = p["q_rand"], p["q_perm"]
    rows = np.arange(B)
    T = TOKEN_ID
    q = np.full((B, len(QTYPES), QLEN), T["<pad>"], np.int64)
    ans = np.zeros((B, len(QTYPES)), np.int64)
    qt = np.tile(np.arange(len(QTYPES)), (B, 1))

    def put(j: int, mask: np.ndarray, words: list[np.ndarray]) -> None:
        toks = np.stack(words, 1)
        q[mask, j, QLEN - toks.shape[1] :] = toks[mask]
        q[mask, j, : QLEN - toks.shape[1]] = T["<pad>"]

    def tok(names, idx):
        return np.array([T[n] for n in names])[idx]

    def const(name):
        return np.full(B, T[name])

    # "all": pick a shape present twice or more (else once); half the time recolour all its instances
    shape_count = np.stack([(P & (S == s)).sum(1) for s in range(len(SHAPES))], 1)
    s_all, ok2 = _pick(shape_count >= 2, perm[:, 0])
    s_all1, _ = _pick(shape_count >= 1, perm[:, 1])
    s_all = np.where(ok2, s_all, s_all1)
    inst = P & (S == s_all[:, None])
    first_inst, _ = _pick(inst, perm[:, 2])
    c_all = C[rows, first_inst]
    force = r[:, 0] < 0.5
    C = np.where(force[:, None] & inst, c_all[:, None], C)
    p["color"] = C
    all_yes = ~(inst & (C != c_all[:, None])).any(1)

    # count: colour only (1/3), shape only (1/3), all objects (1/6), colour and shape (1/6)
    mode = np.digitize(r[:, 1], [1 / 3, 2 / 3, 5 / 6])
    cc = (r[:, 2] * len(COLORS)).astype(int)
    ss = (r[:, 3] * len(SHAPES)).astype(int)
    use_c = (mode == 0) | (mode == 3)
    use_s = (mode == 1) | (mode == 3)
    n = (P & (~use_c[:, None] | (C == cc[:, None])) & (~use_s[:, None] | (S == ss[:, None]))).sum(1)
    c_word = np.where(use_c, tok(COLORS, cc), T["the"])
    s_word = np.where(use_s, tok(SHAPES, ss), T["objects"])

    def count_q(j: int, mask: np.ndarray) -> None:
        put(j, mask, [const("how"), const("many"), c_word, s_word, const("?")])
        ans[mask, j] = tok([str(i) for i in range(MAX_OBJECTS + 1)], n)[mask]
        qt[mask, j] = 0

    count_q(0, np.ones(B, bool))

    # colour of the unique (size, shape) object; shape of the unique (size, colour) object
    zs = Z * len(SHAPES) + S
    zc = Z * len(COLORS) + C
    cnt_zs = np.stack([(P & (zs == v)).sum(1) for v in range(2 * len(SHAPES))], 1)
    cnt_zc = np.stack([(P & (zc == v)).sum(1) for v in range(2 * len(COLORS))], 1)
    v, ok = _pick(cnt_zs == 1, perm[:, 3])
    obj = (P & (zs == v[:, None])).argmax(1)
    put(1, ok, [const("what"), const("color"), const("is"), const("the"), tok(SIZES, v // 5), tok(SHAPES, v % 5),
                const("?")])  # fmt: skip
    ans[ok, 1] = tok(COLORS, C[rows, obj])[ok]
    count_q(1, ~ok)
    v, ok = _pick(cnt_zc == 1, perm[:, 4])
    obj = (P & (zc == v[:, None])).argmax(1)
    put(2, ok, [const("what"), const("shape"), const("is"), const("the"), tok(SIZES, v // 6), tok(COLORS, v % 6),
                const("object"), const("?")])  # fmt: skip
    ans[ok, 2] = tok(SHAPES, S[rows, obj])[ok]
    count_q(2, ~ok)

    # exist: half the time a (colour, shape) that is there, else one that is not
    sc = S * len(COLORS) + C
    cnt_sc = np.stack([(P & (sc == v)).sum(1) for v in range(len(SHAPES) * len(COLORS))], 1)
    want = r[:, 8] < 0.5
    v_yes, ok_yes = _pick(cnt_sc > 0, perm[:, 5])
    v_no, ok_no = _pick(cnt_sc == 0, perm[:, 6])
    v = np.where(want & ok_yes | ~ok_no, v_yes, v_no)
    put(3, np.ones(B, bool), [const("is"), const("there"), const("a"), tok(COLORS, v % 6), tok(SHAPES, v // 6),
                              const("?")])  # fmt: skip
    ans[:, 3] = np.where(cnt_sc[rows, v] > 0, T["yes"], T["no"])

    # all: "are all <shape> <colour> ?"
    put(4, np.ones(B, bool), [const("are"), const("all"), tok(SHAPES, s_all), tok(COLORS, c_all), const("?")])
    ans[:, 4] = np.where(all_yes, T["yes"], T["no"])

    # relation between two unique (size, shape) objects, clear by at least 5 px on the asked axis
    uniq = cnt_zs == 1
    score = np.where(uniq, perm[:, 7, : uniq.shape[1]] + 1.0, -1.0)
    order = np.argsort(-score, 1)
    va, vb = order[:, 0], order[:, 1]
    ok = uniq[rows, va] & uniq[rows, vb]
    oa = (P & (zs == va[:, None])).argmax(1)
    ob = (P & (zs == vb[:, None])).argmax(1)
    rel = (r[:, 9] * 4).astype(int)
    ctr = p["center"]
    axis = np.where(rel < 2, 0, 1)
    d = ctr[rows, oa, axis] - ctr[rows, ob, axis]  # a minus b
    ok &= np.abs(d) >= 5
    truth = np.where(rel % 2 == 0, d < 0, d > 0)  # left/above: a has the smaller coordinate
    put(5, ok, [const("is"), const("the"), tok(SIZES, va // 5), tok(SHAPES, va % 5), tok(RELATIONS, rel),
                const("the"), tok(SIZES, vb // 5), tok(SHAPES, vb % 5), const("?")])  # fmt: skip
    ans[ok, 5] = np.where(truth, T["yes"], T["no"])[ok]
    count_q(5, ~ok)
    return q, ans, qt


# ----------------------------------------------------------------------------------------------- rendering
def _hash_uniform(seed, shape_hw: int, channels: int, device):
    """Uniform [0,1) noise from an integer hash of (seed, pixel, channel): identical on CPU and GPU."""
    import torch

    idx = torch.arange(shape_hw * channels, device=device, dtype=torch.int64)
    v = (seed[:, None] * 0x27D4EB2D + idx[None, :] * 0x165667B1) & 0xFFFFFFFF
    for _ in range(2):  # a two-round xorshift-multiply mixer (as in common integer hashes)
        v = ((v >> 16) ^ v) * 0x45D9F3B & 0xFFFFFFFF
    v = (v >> 16) ^ v
    return (v.to(torch.float32) / 4294967296.0).view(-1, channels, shape_hw)


def _render(p: dict[str, np.ndarray], device):
    import torch

    B, K, H = len(p["present"]), MAX_OBJECTS, IMAGE_SIZE
    f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    ys, xs = torch.meshgrid(torch.arange(H, device=device) + 0.5, torch.arange(H, device=device) + 0.5,
                            indexing="ij")  # fmt: skip
    # background: tinted grey + stripes + gradient + hashed pixel noise
    ang, freq, ph = f(p["bg_angle"]), f(p["bg_freq"]), f(p["bg_phase"])
    proj = xs[None] * torch.cos(ang)[:, None, None] + ys[None] * torch.sin(ang)[:, None, None]
    stripes = f(p["bg_amp"])[:, None, None] * torch.sin(proj * freq[:, None, None] + ph[:, None, None])
    grad = f(p["bg_grad"])
    ramp = (xs[None] / H - 0.5) * grad[:, 0, None, None] + (ys[None] / H - 0.5) * grad[:, 1, None, None]
    base = f(p["bg_level"])[:, None, None] + stripes + ramp  # [B, H, W]
    seeds = torch.as_tensor(p["noise_seed"].astype(np.int64), device=device)
    noise = (
        (_hash_uniform(seeds, H * H, 3, device).view(B, 3, H, H) - 0.5)
        * 2
        * f(p["noise_amp"])[:, None, None, None]
    )
    img = base[:, None] + f(p["bg_tint"])[:, :, None, None] + noise
    # distractors: small grey blobs
    dc, dr = f(p["d_center"]), f(p["d_radius"])
    dd = (xs[None, None] - dc[..., 0, None, None]) ** 2 + (ys[None, None] - dc[..., 1, None, None]) ** 2
    on = (dd <= dr[..., None, None] ** 2) & (
        torch.arange(4, device=device)[None, :, None, None] < torch.as_tensor(p["n_distract"], device=device)[:, None, None, None]
    )  # fmt: skip
    level = (on.float() * f(p["d_level"])[..., None, None]).amax(1)
    img = torch.where(on.any(1)[:, None], level[:, None].expand(-1, 3, -1, -1), img)
    # objects: masks from signed shapes, painted in slot order (slots are in random cells: random depth)
    ctr, rad = f(p["center"]), f(p["radius"])
    dx = xs[None, None] - ctr[..., 0, None, None]
    dy = ys[None, None] - ctr[..., 1, None, None]
    r = rad[..., None, None]
    ax, ay = dx.abs(), dy.abs()
    masks = torch.stack(
        [
            dx * dx + dy * dy <= r * r,  # circle
            torch.maximum(ax, ay) <= 0.86 * r,  # square
            (dy <= 0.75 * r) & (ax <= (dy + r) * 0.6),  # triangle, apex up
            ax + ay <= 1.18 * r,  # diamond
            ((ax <= 0.36 * r) & (ay <= r)) | ((ay <= 0.36 * r) & (ax <= r)),  # cross
        ],
        0,
    )  # [5, B, K, H, W]
    shape = torch.as_tensor(p["shape"], device=device)
    mask = torch.gather(masks, 0, shape[None, :, :, None, None].expand(1, B, K, H, H))[0]
    mask &= torch.as_tensor(p["present"], device=device)[:, :, None, None]
    rgb = f(COLOR_RGB)[torch.as_tensor(p["color"], device=device)] * f(p["bright"])[..., None]  # [B, K, 3]
    visible = torch.full((B, H, H), -1, dtype=torch.int64, device=device)
    obj_noise = noise * 0.5
    for k in range(K):  # K = 10 slots, each vectorised over the batch and the pixels
        m = mask[:, k]
        img = torch.where(m[:, None], rgb[:, k, :, None, None] + obj_noise, img)
        visible = torch.where(m, k, visible)
    img = (img / 255.0).clamp(0, 1)
    onehot = torch.nn.functional.one_hot(visible + 1, K + 1).permute(0, 3, 1, 2).float()[:, 1:]
    coverage = torch.nn.functional.avg_pool2d(onehot, PATCH).flatten(2)  # [B, K, GRID*GRID]
    return img, visible, coverage


def make_batch(
    split: str | int = "val", start: int = 0, count: int = 16, *, device: str = "cpu"
) -> SceneBatch:
    """Scenes ``start .. start+count-1`` of ``split``, rendered on ``device``, with six questions each.

    Examples
    --------
    >>> b = make_batch("val", 0, 2)
    >>> tuple(b.images.shape), b.questions.shape
    ((2, 3, 112, 112), (2, 6, 10))
    """
    p = scene_params(split, start, count)
    q, a, t = _questions(p)  # may recolour the objects of the "all" question: render after
    img, visible, coverage = _render(p, device)
    return SceneBatch(
        images=img,
        present=p["present"],
        shape=p["shape"],
        color=p["color"],
        size=p["size"],
        center=p["center"],
        radius=p["radius"],
        visible=visible,
        coverage=coverage,
        questions=q,
        answers=a,
        qtypes=t,
        index=p["index"],
    )
