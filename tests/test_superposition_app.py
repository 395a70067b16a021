"""The Superposition tab through gradio_client: a toy sweep, a bad input, and the server still serving."""

from __future__ import annotations

import pytest


def test_toy_endpoint_and_bad_input(client):
    cap, scatter, gram, table, files = client.predict(
        8, 3, "0, 0.9, 0.99", 300, 1.0, 4, api_name="/superposition_toy"
    )
    assert "Pearson r" in cap
    assert len(table["data"]) == 3
    with pytest.raises(Exception, match="sparsity"):
        client.predict(8, 3, "0, 1.5", 300, 1.0, 4, api_name="/superposition_toy")
    with pytest.raises(Exception, match="neurons < features"):
        client.predict(3, 3, "0.5", 300, 1.0, 4, api_name="/superposition_toy")
    # still serving after the errors
    cap2, *_ = client.predict(8, 3, "0.9", 200, 1.0, 4, api_name="/superposition_toy")
    assert "Pearson" in cap2


def test_layer_out_of_range_is_a_clear_error(client):
    with pytest.raises(Exception, match="out of range"):
        client.predict(
            "smollm2", False, 99, "residual stream", "Default corpus (Python stdlib docstrings)", "", None,
            4, 0.1, 256, 1, None, api_name="/superposition_measure",
        )  # fmt: skip
