"""Shared fixtures. ``app_url`` launches the real app once per test session in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """URL of a launched app (``python -m app``), shared by every app and browser test."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--port", str(port), "--no-warmup"],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early:\n{log.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"app did not start:\n{log.read_text()[-4000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def write_tiny_tokenizer(path) -> None:
    """A word-level tokenizer for the tiny LLaVA (offline: nothing from the hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [
        "[UNK]",
        "<s>",
        "USER:",
        "ASSISTANT:",
        "<image>",
        "what",
        "is",
        "this",
        "?",
        "how",
        "many",
        "objects",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>").save_pretrained(path)


def tiny_llava(path, seed: int = 0):
    """A randomly initialised LLaVA-1.5-style model (4-layer CLIP tower, 32 px / patch 8; 4-layer Llama) saved to
    ``path``: enough encoder layers for FlowCut to prune inside the tower before the layer the LM reads."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    small = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2)
    text = tf.LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    cfg = tf.LlavaConfig(vision_config=tf.CLIPVisionConfig(intermediate_size=64, **small), text_config=text,
                         image_token_index=4)  # fmt: skip
    model = tf.LlavaForConditionalGeneration(cfg)
    write_tiny_tokenizer(path)
    model.save_pretrained(path)
    return model


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_llava")
    tiny_llava(path)
    return path
