"""GPU parity of the layer scan: the claims the docs make, rerunnable by anyone with a CUDA device.

- the batched hook scan on CUDA gives the CPU's numbers (fp32), and
- on CUDA it gives the official layer-by-layer procedure's numbers (fp32 and bf16),

on a tiny random Llama (the SmolLM2 layout at a fraction of its width), so no weights are needed. The splat
renderer's parity with gsplat is in tests/test_splats_gpu.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from engine.layers.reference import reference_scan
from engine.layers.scan import scan_layers
from engine.models import LoadedModel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _tiny(device: str, dtype=torch.float32, attn: str = "eager") -> LoadedModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=256, num_hidden_layers=6,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                      attn_implementation=attn)  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    model = copy.deepcopy(model).to(device=device, dtype=dtype)
    return LoadedModel(model=model, tokenizer=None, name="tiny-llama", kind="causal", n_layers=6, hidden_size=96,
                       n_heads=6, n_kv_heads=2, head_dim=16, device=device, source="random",
                       load_seconds=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def windows():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 512, (8, 128), generator=g)


def test_scan_cuda_matches_cpu_fp32(windows):
    # TF32 would make CUDA matmuls differ from the CPU's at ~1e-3; the docs' claim is about plain fp32.
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu = scan_layers(_tiny("cpu"), windows)
    gpu = scan_layers(_tiny("cuda"), windows)
    assert gpu.provenance.backend == "cuda" and cpu.provenance.backend == "cpu"
    # 1e-5: cosines of fp32 streams summed in float64; CPU and CUDA reduce in different orders (~1e-6 seen).
    for field in ("attn_similarity", "mlp_similarity", "block_similarity", "hidden_similarity",
                  "head_similarity"):  # fmt: skip
        np.testing.assert_allclose(getattr(gpu, field), getattr(cpu, field), atol=1e-5, err_msg=field)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-3)])
def test_scan_cuda_matches_reference(windows, dtype, atol):
    # bf16: both paths see the same bf16 activations, but reduce the cosines in different precisions and
    # orders; 1e-3 is the bound the speed issue states for bf16 (an 8-bit mantissa gives ~4e-3 per element).
    torch.backends.cuda.matmul.allow_tf32 = False
    loaded = _tiny("cuda", dtype)
    ours = scan_layers(loaded, windows, head_layer=None, hidden=False)
    ref = reference_scan(loaded, windows)
    for kind in ("attn", "mlp", "block"):
        np.testing.assert_allclose(
            getattr(ours, f"{kind}_similarity"), ref[kind].float().cpu().numpy(), atol=atol, err_msg=kind
        )
