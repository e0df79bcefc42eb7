"""Cross-entropy on supervised positions only: equal to the full-logits loss and its gradients, the fused head
cross-entropy equal to autograd's across chunks, and the mask dropped only for right-padded batches."""

import pytest
import torch
import torch.nn.functional as F

from tunesmith.data.tokenize import tokenize_examples
from tunesmith.predict.loss import supervised_loss_sum
from tunesmith.predict.model_inputs import collate


def test_supervised_loss_equals_full_logits(tiny_model, tiny_tokenizer, spam_examples):
    rows, _ = tokenize_examples(spam_examples(5), tiny_tokenizer, max_length=64)
    batch = collate(rows, tiny_tokenizer.pad_token_id)
    loss_sum, count = supervised_loss_sum(tiny_model, batch)
    grads = torch.autograd.grad(loss_sum / count, list(tiny_model.parameters()), allow_unused=True)

    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                                ignore_index=-100)
    reference_grads = torch.autograd.grad(reference, list(tiny_model.parameters()), allow_unused=True)
    assert count == int((batch["labels"][:, 1:] != -100).sum())
    assert abs(float(loss_sum.detach() / count) - float(reference)) < 1e-5
    for got, want in zip(grads, reference_grads):
        if want is not None:
            assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("train_head", [False, True])
def test_fused_head_cross_entropy_equals_autograd_across_chunks(monkeypatch, train_head):
    from tunesmith.predict import loss as loss_module

    monkeypatch.setattr(loss_module, "_HEAD_CHUNK_ROWS", 7)  # 30 rows: several chunks and a ragged last one
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(30, 16, generator=generator, requires_grad=True)
    weight = (torch.randn(50, 16, generator=generator) * 0.5).requires_grad_(train_head)
    targets = torch.randint(0, 50, (30,), generator=generator)
    reference = F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")
    wanted = torch.autograd.grad(reference * 0.3, [hidden, weight] if train_head else [hidden])
    fused = loss_module._LinearCrossEntropySum.apply(hidden, weight, targets)
    got = torch.autograd.grad(fused * 0.3, [hidden, weight] if train_head else [hidden])
    assert abs(float(fused) - float(reference)) < 1e-4
    for g, w in zip(got, wanted):
        assert torch.allclose(g, w, atol=1e-6)


def test_fused_head_cross_entropy_in_bf16_keeps_the_loss_in_fp32(monkeypatch):
    """bf16 hidden states and head (a GPU's `model.dtype: auto`): the loss is summed in fp32, the gradients come back
    in bf16 and agree with an fp32 reference to bf16 rounding."""
    from tunesmith.predict import loss as loss_module

    monkeypatch.setattr(loss_module, "_HEAD_CHUNK_ROWS", 7)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(30, 16, generator=generator)
    weight = torch.randn(50, 16, generator=generator) * 0.5
    targets = torch.randint(0, 50, (30,), generator=generator)
    reference = [hidden.double().requires_grad_(), weight.double().requires_grad_()]
    want_loss = F.cross_entropy(F.linear(*reference), targets, reduction="sum")
    want = torch.autograd.grad(want_loss / 30, reference)
    half = [hidden.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_()]
    fused = loss_module._LinearCrossEntropySum.apply(*half, targets)
    got = torch.autograd.grad(fused / 30, half)
    assert fused.dtype == torch.float32
    assert abs(float(fused) - float(want_loss)) <= 3e-3 * float(want_loss)
    for g, w in zip(got, want):
        assert g.dtype == torch.bfloat16
        assert float((g.double() - w).norm() / w.norm()) <= 1e-2


def test_right_padding_is_detected_so_only_those_batches_drop_the_mask():
    from tunesmith.predict.loss import _right_padded

    assert _right_padded(torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
    assert not _right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # left padding needs the mask
    assert not _right_padded(torch.tensor([[1, 0, 1]]))
