"""Engine tests for the Layer Redundancy family, on the real SmolLM2-135M and all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.corpus import default_corpus, token_windows, user_corpus
from engine.layers.arch import decoder_layers
from engine.layers.drop import DropPlan, dropped, evaluate_drop, perplexity, plan_drop
from engine.layers.reference import reference_scan
from engine.layers.scan import scan_from_dict, scan_layers
from engine.models import load_model
from engine.registry import InputError, by_family, get


@pytest.fixture(scope="module")
def smol():
    return load_model("smollm2")


@pytest.fixture(scope="module")
def corpus():
    return default_corpus()


@pytest.fixture(scope="module")
def windows(smol, corpus):
    return token_windows(smol.tokenizer, corpus.calibration, 4, 64)


@pytest.fixture(scope="module")
def scan(smol, windows):
    return scan_layers(smol, windows)


def test_registry_lists_layer_methods_with_papers():
    names = {m.name for m in by_family("layers")}
    assert {"layer-similarity", "attn-drop", "mlp-drop", "block-drop", "joint-drop", "random-drop"} <= names
    assert "2406.15786" in get("attn-drop").paper.ref
    assert get("attn-drop").validate({"n": "3"}) == {"n": 3, "iterative": False}
    with pytest.raises(InputError, match="must be <= 64"):
        get("attn-drop").validate({"n": 65})
    with pytest.raises(InputError, match="no parameter"):
        get("attn-drop").validate({"bogus": 1})


def test_builtin_model_shapes(smol):
    assert smol.kind == "causal" and smol.n_layers == 30 and smol.hidden_size == 576
    assert smol.n_heads == 9 and smol.n_kv_heads == 3
    assert smol.model.config._attn_implementation == "eager"


def test_corpus_is_deterministic_and_split(corpus, smol):
    assert len(corpus.calibration) > 100_000 and len(corpus.heldout) > 10_000
    cal = set(corpus.calibration.split("\n\n"))
    assert not cal & set(corpus.heldout.split("\n\n"))
    a = token_windows(smol.tokenizer, corpus.calibration, 3, 32)
    b = token_windows(smol.tokenizer, corpus.calibration, 3, 32)
    assert torch.equal(a, b) and a.shape == (3, 32)
    assert (a[:, 0] == smol.tokenizer.bos_token_id).all()
    # consecutive windows: window 1 continues where window 0 ends
    flat = smol.tokenizer(corpus.calibration[:2000], add_special_tokens=False)["input_ids"]
    assert a[0, 1:].tolist() == flat[:31] and a[1, 1:].tolist() == flat[31:62]


def test_scan_matches_official_layer_by_layer_procedure(smol, windows, scan):
    ref = reference_scan(smol, windows)
    for kind, ours in (
        ("attn", scan.attn_similarity),
        ("mlp", scan.mlp_similarity),
        ("block", scan.block_similarity),
    ):
        np.testing.assert_allclose(ours, ref[kind].numpy(), atol=1e-4, err_msg=kind)


def test_block_similarity_matches_hidden_states_directly(smol, windows, scan):
    with torch.inference_mode():
        hs = smol.model.model(input_ids=windows, output_hidden_states=True).hidden_states
    # hidden_states[l] is the input of layer l; the last entry is after the final norm, so stop before it
    for layer in range(smol.n_layers - 1):
        cos = (
            torch.nn.functional.cosine_similarity(hs[layer].float(), hs[layer + 1].float(), dim=-1)
            .mean()
            .item()
        )
        assert abs(cos - scan.block_similarity[layer]) < 1e-4, layer
        assert abs(cos - scan.hidden_similarity[layer, layer + 1]) < 1e-4
    np.testing.assert_allclose(np.diag(scan.hidden_similarity), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.diag(scan.head_similarity), 1.0, atol=1e-6)
    assert scan.head_similarity.shape == (9, 9) and scan.hidden_similarity.shape == (31, 31)


def test_expected_shape_deep_attention_is_redundant(scan):
    deep = slice(scan.n_layers // 2, None)
    assert np.mean(scan.attn_similarity[deep]) > 0.95
    assert np.mean(scan.attn_similarity[deep]) > np.mean(scan.mlp_similarity[deep])
    ranking = scan.ranking("attn")
    assert scan.attn_similarity[ranking[0]] == scan.attn_similarity.max()


def test_drop_restores_every_module_and_output(smol, windows):
    layers = decoder_layers(smol.model)
    before = [(id(layer), id(layer.self_attn), id(layer.mlp)) for layer in layers]
    with torch.inference_mode():
        ref = smol.model(input_ids=windows[:1]).logits
        with dropped(smol.model, DropPlan(attn=(3, 20), mlp=(5,), block=(10,))) as info:
            changed = smol.model(input_ids=windows[:1]).logits
            assert info["params_removed"] > 0
        after = smol.model(input_ids=windows[:1]).logits
    assert [(id(layer), id(layer.self_attn), id(layer.mlp)) for layer in layers] == before
    assert torch.equal(ref, after)
    assert not torch.allclose(ref, changed)


def test_dropped_attention_adds_nothing(smol, windows):
    with dropped(smol.model, DropPlan(attn=(7,))):
        rescan = scan_layers(smol, windows)
    assert rescan.attn_similarity[7] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="out of|0..29"):
        with dropped(smol.model, DropPlan(attn=(30,))):
            pass


def test_attention_drop_hurts_less_than_mlp_and_random(smol, scan, corpus):
    held = token_windows(smol.tokenizer, corpus.heldout, 2, 128)
    ppl = {"full": perplexity(smol, held)}
    for strategy in ("attn", "mlp"):
        with dropped(smol.model, plan_drop(smol, None, strategy=strategy, n=6, scan=scan)):
            ppl[strategy] = perplexity(smol, held)
    with dropped(smol.model, plan_drop(smol, None, strategy="random", n=6, seed=42)):
        ppl["random"] = perplexity(smol, held)
    assert ppl["full"] < ppl["attn"] < ppl["mlp"], ppl
    assert ppl["attn"] < ppl["random"], ppl


def test_plans_one_shot_iterative_joint_random(smol, windows, scan):
    one = plan_drop(smol, windows, strategy="attn", n=3, scan=scan)
    assert list(one.attn) == sorted(scan.ranking("attn")[:3])
    it = plan_drop(smol, windows, strategy="attn", n=3, iterative=True, scan=scan)
    assert len(set(it.attn)) == 3 and it.strategy == "attn-iterative"
    assert it.attn[0] in one.attn or scan.ranking("attn")[0] in it.attn
    joint = plan_drop(smol, windows, strategy="joint", n=5, scan=scan)
    assert len(joint.attn) + len(joint.mlp) == 5
    r1 = plan_drop(smol, None, strategy="random", n=4, seed=1)
    assert r1 == plan_drop(smol, None, strategy="random", n=4, seed=1)
    assert r1 != plan_drop(smol, None, strategy="random", n=4, seed=2)
    with pytest.raises(InputError):
        plan_drop(smol, windows, strategy="attn", n=31, scan=scan)


def test_evaluate_drop_reports_savings_and_generates(smol, corpus):
    held = token_windows(smol.tokenizer, corpus.heldout, 1, 64)
    ev = evaluate_drop(smol, DropPlan(attn=(0, 26)), held, max_new_tokens=6)  # layer 0: cache bookkeeping
    assert ev.kv_saving == pytest.approx(2 / 30)
    assert ev.full["kv_bytes_per_token"] == 2 * 30 * 3 * 64 * 4
    assert ev.params_removed == 2 * sum(p.numel() for p in smol.model.model.layers[0].self_attn.parameters())
    assert ev.pruned["perplexity"] > ev.full["perplexity"]
    assert ev.full["sample"] and isinstance(ev.pruned["sample"], str)
    assert ev.to_dict()["provenance"]["method"] == "drop:manual"


def test_scan_roundtrips_through_json(scan):
    import json

    back = scan_from_dict(json.loads(scan.to_json()))
    np.testing.assert_allclose(back.attn_similarity, scan.attn_similarity)
    assert back.provenance.input_fingerprint == scan.provenance.input_fingerprint
    assert "attn_similarity" in scan.table_csv("layers").splitlines()[0]


def test_encoder_scan_and_drop():
    mini = load_model("minilm")
    assert mini.kind == "encoder" and mini.n_layers == 6
    w = token_windows(mini.tokenizer, default_corpus().calibration, 2, 64)
    s = scan_layers(mini, w)
    assert s.layout == "bert" and np.all((s.attn_similarity > 0.5) & (s.attn_similarity <= 1.0))
    ev = evaluate_drop(mini, DropPlan(mlp=(2,), attn=(4,)), w)
    assert ev.metric == "embedding_cosine" and 0.0 < ev.pruned["embedding_cosine"] < 1.0
    with pytest.raises(InputError, match="maximum of 512"):
        scan_layers(mini, torch.zeros(1, 600, dtype=torch.long))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_local_directory_models_load_and_scan(tmp_path, smol, arch):
    """The hub-loading path (AutoConfig/AutoModel, trust_remote_code=False) on tiny random local models."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "llama":
        cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=49152, n_embd=64, n_layer=3, n_head=4, n_positions=256)
        model = GPT2LMHeadModel(cfg)
    model.save_pretrained(tmp_path)
    smol.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.kind == "causal" and loaded.n_layers == 3
    w = token_windows(loaded.tokenizer, default_corpus().calibration, 2, 32)
    s = scan_layers(loaded, w)
    ref = reference_scan(loaded, w)
    np.testing.assert_allclose(s.attn_similarity, ref["attn"].numpy(), atol=1e-4)
    np.testing.assert_allclose(s.mlp_similarity, ref["mlp"].numpy(), atol=1e-4)
    ev = evaluate_drop(loaded, DropPlan(attn=(1,), block=(2,)), w, max_new_tokens=3)
    assert np.isfinite(ev.pruned["perplexity"])


def test_bad_inputs_are_clear(smol):
    with pytest.raises(InputError, match="fewer than"):
        token_windows(smol.tokenizer, "a short text", 2, 64)
    with pytest.raises(InputError, match=r"sample count must be in \[1, 256\]"):
        token_windows(smol.tokenizer, "x", 0, 64)
    with pytest.raises(InputError, match="sample length"):
        token_windows(smol.tokenizer, "x", 1, 4096)
    with pytest.raises(InputError, match="empty"):
        user_corpus("   ")
    with pytest.raises(InputError, match="network access is off"):
        load_model("someone/some-model", allow_network=False)
    with pytest.raises(InputError, match="unknown model"):
        load_model("no-such-model")
    with pytest.raises(InputError, match="head layer 30 is out of range"):
        scan_layers(smol, torch.zeros(1, 16, dtype=torch.long), head_layer=30)
