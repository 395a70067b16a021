"""The scene generator: determinism, answers that agree with the object table, masks per patch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.vision import scenes as S


@pytest.fixture(scope="module")
def batch():
    return S.make_batch("val", 0, 24)


def test_deterministic_and_independent_of_chunking(batch):
    part = S.make_batch("val", 5, 3)
    assert torch.equal(part.images, batch.images[5:8])
    assert (part.questions == batch.questions[5:8]).all()
    assert (part.answers == batch.answers[5:8]).all()
    other = S.make_batch("train", 5, 3)
    assert not torch.equal(other.images, part.images)


def test_shapes_and_ranges(batch):
    assert tuple(batch.images.shape) == (24, 3, S.IMAGE_SIZE, S.IMAGE_SIZE)
    assert float(batch.images.min()) >= 0 and float(batch.images.max()) <= 1
    assert batch.questions.shape == (24, len(S.QTYPES), S.QLEN)
    n = batch.present.sum(1)
    assert n.min() >= 6 and n.max() <= S.MAX_OBJECTS
    # every object is at least two patches across
    assert (2 * batch.radius[batch.present] >= 2 * S.PATCH).all()


def test_coverage_matches_visible_pixels(batch):
    cov = batch.coverage  # [B, K, N]
    assert torch.all(cov.sum(1) <= 1 + 1e-6)
    vis = batch.visible[0]
    k = int(np.flatnonzero(batch.present[0])[0])
    frac = (vis == k).float().reshape(S.GRID, S.PATCH, S.GRID, S.PATCH).mean((1, 3)).flatten()
    assert torch.allclose(frac, cov[0, k], atol=1e-6)
    # no object is hidden whole by the others
    seen = cov.sum(2) > 0
    assert bool(seen[torch.as_tensor(batch.present)].all())


def _answer(b, i, j) -> str:
    """Recompute the answer of question j of scene i from the object table (independent of the generator)."""
    words = S.decode(b.questions[i, j]).split()
    P = b.present[i]
    objs = [(S.COLORS[b.color[i, k]], S.SHAPES[b.shape[i, k]], S.SIZES[b.size[i, k]], b.center[i, k])
            for k in range(S.MAX_OBJECTS) if P[k]]  # fmt: skip
    if words[:2] == ["how", "many"]:
        c = None if words[2] == "the" else words[2]
        s = None if words[3] == "objects" else words[3]
        return str(sum((c is None or o[0] == c) and (s is None or o[1] == s) for o in objs))
    if words[:2] == ["what", "color"]:
        (o,) = [o for o in objs if o[2] == words[4] and o[1] == words[5]]
        return o[0]
    if words[:2] == ["what", "shape"]:
        (o,) = [o for o in objs if o[2] == words[4] and o[0] == words[5]]
        return o[1]
    if words[:2] == ["is", "there"]:
        return "yes" if any(o[0] == words[3] and o[1] == words[4] for o in objs) else "no"
    if words[:2] == ["are", "all"]:
        inst = [o for o in objs if o[1] == words[2]]
        assert inst
        return "yes" if all(o[0] == words[3] for o in inst) else "no"
    if words[:2] == ["is", "the"]:
        (a,) = [o for o in objs if o[2] == words[2] and o[1] == words[3]]
        (c,) = [o for o in objs if o[2] == words[6] and o[1] == words[7]]
        rel = words[4]
        axis = 0 if rel in ("left", "right") else 1
        d = a[3][axis] - c[3][axis]
        assert abs(d) >= 5
        return "yes" if (d < 0 if rel in ("left", "above") else d > 0) else "no"
    raise AssertionError(words)


def test_answers_agree_with_objects(batch):
    for i in range(len(batch)):
        for j in range(len(S.QTYPES)):
            assert _answer(batch, i, j) == batch.answer_text(i, j), batch.question_text(i, j)


def test_objects_touched(batch):
    assert batch.objects_touched(range(S.GRID * S.GRID), 0) == 1.0
    assert batch.objects_touched([], 0) == 0.0
