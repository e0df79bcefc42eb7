"""The fused LoRA forward computes exactly what peft's does (to bf16 rounding over a bf16 base, with the adapter
weights kept in fp32), and steps aside whenever peft must decide."""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model

from tunesmith.config import LoraConfig
from tunesmith.models import add_lora
from tunesmith.models.lora_fused import fuse_lora_epilogues


def _loss_and_grads(model, input_ids):
    model.zero_grad()
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return float(loss), grads


def _randomize_lora(model):
    generator = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_" in name:  # B starts at zero in peft; a random B makes the adapter's contribution visible
            param.data = torch.randn(param.shape, generator=generator) * 0.05


def test_fused_forward_matches_peft_loss_and_gradients(tiny_model):
    model = add_lora(tiny_model, LoraConfig(r=4, alpha=8), fuse=False)
    _randomize_lora(model)
    input_ids = torch.randint(3, 100, (3, 17), generator=torch.Generator().manual_seed(0))
    reference_loss, reference_grads = _loss_and_grads(model, input_ids)
    assert fuse_lora_epilogues(model) > 0
    fused_loss, fused_grads = _loss_and_grads(model, input_ids)
    assert abs(fused_loss - reference_loss) <= 1e-6 * abs(reference_loss)
    assert reference_grads.keys() == fused_grads.keys() and reference_grads
    for name, grad in reference_grads.items():
        assert torch.allclose(fused_grads[name], grad, rtol=1e-5, atol=1e-7), name


def test_every_adapted_layer_is_fused_and_used():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    model = get_peft_model(net, PeftLoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], init_lora_weights=False))
    x = torch.randn(5, 8)
    expected = model(x)
    assert fuse_lora_epilogues(model) == 2
    assert fuse_lora_epilogues(model) == 0  # idempotent
    from tunesmith.models import lora_fused

    used = []
    original = lora_fused._plain_adapter
    lora_fused._plain_adapter = lambda layer: used.append(layer) or original(layer)
    try:
        assert torch.equal(model(x), expected)
    finally:
        lora_fused._plain_adapter = original
    assert len(used) == 2


def test_disabled_and_merged_adapters_fall_back_to_peft():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    base_out = net(torch.ones(2, 8)).detach()
    model = get_peft_model(net, PeftLoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], init_lora_weights=False))
    fuse_lora_epilogues(model)
    x = torch.ones(2, 8)
    adapted = model(x).detach()
    assert not torch.allclose(adapted, base_out)
    with model.disable_adapter():
        assert torch.allclose(model(x), base_out)
    model.merge_adapter()
    assert torch.allclose(model(x), adapted, atol=1e-6)
    model.unmerge_adapter()
    assert torch.allclose(model(x), adapted, atol=1e-6)


def test_lora_dropout_uses_peft_forward():
    import copy

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16))
    model = get_peft_model(net, PeftLoraConfig(r=2, lora_alpha=4, lora_dropout=0.5, target_modules=["0"],
                                               init_lora_weights=False))
    reference = copy.deepcopy(model)
    fuse_lora_epilogues(model)
    from tunesmith.models import lora_fused

    assert lora_fused._plain_adapter(model.base_model.model[0]) is None  # dropout: not the plain case
    x = torch.ones(4, 8)
    torch.manual_seed(3)
    expected = reference(x)
    torch.manual_seed(3)
    assert torch.equal(model(x), expected)  # same dropout mask drawn: peft's own forward ran


def test_bf16_base_with_fp32_adapters_is_fused_and_matches_peft(tiny_model, monkeypatch):
    model = add_lora(tiny_model.to(torch.bfloat16), LoraConfig(r=4, alpha=8), fuse=False)
    _randomize_lora(model)
    adapters = [p for name, p in model.named_parameters() if "lora_" in name]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)  # peft's autocast_adapter_dtype
    input_ids = torch.randint(3, 100, (3, 17), generator=torch.Generator().manual_seed(0))
    reference_loss, reference_grads = _loss_and_grads(model, input_ids)
    fuse_lora_epilogues(model)
    fused_calls = []
    real_addmm = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a, **k: fused_calls.append(a[0].dtype) or real_addmm(*a, **k))
    fused_loss, fused_grads = _loss_and_grads(model, input_ids)
    assert fused_calls and set(fused_calls) == {torch.bfloat16}  # the adapter ran in bf16, not peft's fp32 copy
    assert abs(fused_loss - reference_loss) <= 1e-3 * abs(reference_loss)
    for name, grad in reference_grads.items():
        if "lora_" in name:
            assert fused_grads[name].dtype == torch.float32, name
            assert float((fused_grads[name] - grad).norm() / grad.norm()) <= 0.03, name  # bf16 operands
