"""Fixtures of the evaluate tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture()
def chatty_model(tiny_model):
    """The tiny Llama with large random weights.

    The stock init (std 0.02, tied embeddings) makes greedy decoding repeat the prompt's last token forever and
    gives every label nearly the same score; larger weights give varied replies and well-separated scores, so
    batching or caching mistakes change the result.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in tiny_model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return tiny_model
