"""Rollout, attention flow, edge flows, relays and entropy against hand-computed and networkx references."""

from __future__ import annotations

import numpy as np
import pytest

from engine.flow import graph as G
from engine.registry import InputError, by_family, get


def _random_attn(rng, L=3, H=2, T=5, sharp=1.0):
    a = rng.random((L, H, T, T)) ** sharp
    return a / a.sum(-1, keepdims=True)


def test_rollout_hand_computed():
    # one head, two tokens; layer 1: token 1 attends half to token 0; layer 2: token 0 attends fully to token 1
    a1 = np.array([[1.0, 0.0], [0.5, 0.5]])
    a2 = np.array([[0.0, 1.0], [0.0, 1.0]])
    r = G.rollout(np.stack([a1, a2]), residual=0.5)
    h1 = np.array([[1.0, 0.0], [0.25, 0.75]])  # 0.5 A + 0.5 I
    h2 = np.array([[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(r[1], h1)
    np.testing.assert_allclose(r[2], h2 @ h1)
    np.testing.assert_allclose(r[2][0], [0.625, 0.375])
    np.testing.assert_allclose(r[2].sum(-1), 1.0)  # rows stay distributions


def test_head_mean_and_residual_one_is_identity():
    rng = np.random.default_rng(0)
    a = _random_attn(rng)
    np.testing.assert_allclose(G.augment(a, 0.5), G.augment(a.mean(1), 0.5))
    np.testing.assert_allclose(G.rollout(a, residual=1.0)[-1], np.eye(5))


@pytest.mark.parametrize("seed", [0, 1])
def test_attention_flow_matches_networkx(seed):
    rng = np.random.default_rng(seed)
    a = _random_attn(rng, sharp=3.0)
    fast = G.attention_flow(a, output=2, top_k=None)
    ref = G._reference_attention_flow(a, output=2)
    # integer capacities at 1e-6 resolution: a cut has at most T*T edges per layer
    np.testing.assert_allclose(fast, ref, atol=5e-5)


def test_attention_flow_hand_computed():
    # chain: every token attends only to itself except token 1 -> token 0 half of the time
    a = np.array([[[1.0, 0.0], [1.0, 0.0]]])  # token 1 attends fully to token 0
    f = G.attention_flow(a, output=1, top_k=None)  # A_hat = [[1, 0], [0.5, 0.5]]
    np.testing.assert_allclose(f, [0.5, 0.5], atol=1e-6)


def test_sparsified_flow_is_a_lower_bound():
    rng = np.random.default_rng(3)
    a = _random_attn(rng, L=3, T=8, sharp=2.0)
    exact = G.attention_flow(a, output=0, top_k=None)
    sparse = G.attention_flow(a, output=0, top_k=2)
    assert (sparse <= exact + 1e-5).all()


def test_edge_flow_conserves():
    rng = np.random.default_rng(1)
    a_hat = G.augment(_random_attn(rng, L=4, T=6))
    b, e = G.edge_flow(a_hat, output=3)
    np.testing.assert_allclose(e.sum(2), b[1:])  # into each node: its share
    np.testing.assert_allclose(e.sum(1), b[:-1])  # out of each node: its share one layer down
    np.testing.assert_allclose(b.sum(1), 1.0)
    r = G.rollout(_random_attn(np.random.default_rng(1), L=4, T=6))
    np.testing.assert_allclose(b[0], r[-1][3])  # the input layer's shares are the rollout row


def test_entropy():
    T = 8
    uniform = np.full((2, 1, T, T), 1.0 / T)
    onehot = np.broadcast_to(np.eye(T), (2, 1, T, T))
    np.testing.assert_allclose(G.attention_entropy(uniform, query=0)["mean"], 3.0)
    np.testing.assert_allclose(G.attention_entropy(onehot, query=0)["query"], 0.0)


def test_graph_result_and_registry():
    assert {m.name for m in by_family("flow")} >= {"attention-rollout", "attention-flow"}
    rng = np.random.default_rng(0)
    a = _random_attn(rng, L=3, T=10)
    res = get("attention-rollout")(a, output=0, top_edges=20)
    assert len(res.edges) == 20 and all(e[1] != e[2] for e in res.edges)
    assert res.edges[0][3] >= res.edges[-1][3]
    np.testing.assert_allclose(res.importance.sum(), 1.0)
    assert all(r["token"] != 0 for r in res.relays)  # the output's own residual path is not a relay
    d = res.to_dict()
    assert "extra" not in d and len(d["entropy"]) == 3
    flow = get("attention-flow")(a, output=np.ones(10), top_k=4)  # weights over several outputs
    assert flow.output == -1 and np.isfinite(flow.importance).all()
    with pytest.raises(InputError):
        G.rollout(np.full((2, 3, 3), np.nan))
    with pytest.raises(InputError):
        G.attention_flow(a, output=99)
