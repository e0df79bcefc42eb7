"""Loading a model folder: one loader for every folder (dtype, safetensors only, KV cache off, eval mode); a Hub id
from the Hugging Face cache; preparing a model for its training method (LoRA, DoRA, QLoRA's refusal without CUDA,
full; gradient checkpointing)."""

from __future__ import annotations

import copy

import pytest
import torch

from tunesmith.config import ModelConfig
from tunesmith.errors import ModelError
from tunesmith.models import load_model_folder, pick_dtype


def test_one_loader_with_the_configured_dtype(tiny_model_dir):
    model = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir)), torch.device("cpu"))
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert model.config.use_cache is False  # training does not use it; generation turns it on per call
    half = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir), dtype="bfloat16"),
                             torch.device("cpu"))
    assert next(half.parameters()).dtype == torch.bfloat16
    saved_dtype = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir), dtype="bfloat16"),
                                    torch.device("cpu"), dtype="auto")
    assert next(saved_dtype.parameters()).dtype == torch.float32


def test_auto_dtype_is_fp32_on_cpu():
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("float16", torch.device("cpu")) == torch.float16


def test_only_safetensors_weights_are_loaded(tmp_path, tiny_model_dir):
    from tunesmith.models import load_base_model

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="tunesmith loads weights only from safetensors"):
        load_base_model(ModelConfig(name=str(folder)))


# ---- preparing a model for training, by method ---------------------------------------------------------------------


def run_config(model_dir, method="lora", **train):
    from tunesmith.config import validate_config

    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl"}, "method": method,
                            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, "train": train})


def trainable_names(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def tiny_batch():
    ids = torch.tensor([[1, 40, 77, 150, 9, 300, 2, 64], [1, 41, 78, 151, 10, 301, 2, 2]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_adapter_methods_freeze_the_base_and_name_it_portably(tiny_model, tiny_model_dir, method):
    from tunesmith.models import prepare_for_training

    model = prepare_for_training(tiny_model, run_config(tiny_model_dir, method))
    trainable = trainable_names(model)
    assert trainable and all("lora_" in name for name in trainable)
    assert any("lora_magnitude_vector" in name for name in trainable) == (method == "dora")
    adapter = model.peft_config["default"]
    assert adapter.use_dora == (method == "dora")
    assert adapter.base_model_name_or_path == str(tiny_model_dir) and adapter.revision is None


def test_dora_layers_keep_peft_forward(tiny_model, tiny_model_dir):
    """The fused LoRA forward computes plain LoRA only; a DoRA layer must run peft's own (weight-normalized)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    from tunesmith.models import prepare_for_training

    model = prepare_for_training(tiny_model, run_config(tiny_model_dir, "dora"))
    layer = next(module for module in model.modules() if isinstance(module, LoraLinear))
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()  # B starts at zero: make the adapter matter
        x = torch.randn(3, layer.in_features)
        assert torch.allclose(layer(x), layer._peft_forward(x))
        assert not torch.allclose(layer(x), layer.base_layer(x))


def test_full_trains_every_weight(tiny_model, tiny_model_dir):
    from tunesmith.models import prepare_for_training

    model = prepare_for_training(tiny_model, run_config(tiny_model_dir, "full"))
    assert model is tiny_model and trainable_names(model) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing_recomputes_the_layers_the_loss_calls(tiny_model, tiny_model_dir, method):
    """The training loss calls the decoder body, not the CausalLM: checkpointing must hold there (each layer runs
    twice per step: forward, and again in the backward pass) and give the same gradients."""
    from tunesmith.models import prepare_for_training
    from tunesmith.predict.loss import decoder_of, supervised_loss_sum

    def gradients_and_layer_calls(checkpointing: bool):
        torch.manual_seed(0)
        model = prepare_for_training(build_model(), run_config(tiny_model_dir, method,
                                                               gradient_checkpointing=checkpointing)).train()
        calls = []
        # Counted in a module the layer calls: transformers checkpoints the layer's forward (its hooks stay outside)
        # and torch runs no module hooks while it recomputes, so only a wrapped forward sees the second call.
        mlp = decoder_of(model).layers[0].mlp
        mlp.forward = lambda *args, forward=mlp.forward: calls.append(1) or forward(*args)
        loss, _ = supervised_loss_sum(model, tiny_batch())
        loss.backward()
        return {name: p.grad for name, p in model.named_parameters() if p.requires_grad}, len(calls)

    build_model = lambda: copy.deepcopy(tiny_model)  # noqa: E731
    plain, plain_calls = gradients_and_layer_calls(False)
    checkpointed, checkpointed_calls = gradients_and_layer_calls(True)
    assert (plain_calls, checkpointed_calls) == (1, 2)
    assert plain.keys() == checkpointed.keys()
    for name, gradient in plain.items():
        assert gradient is not None and torch.allclose(gradient, checkpointed[name], atol=1e-6), name


def test_qlora_is_refused_before_loading_on_a_machine_without_cuda(monkeypatch, tiny_model_dir, error_of):
    from tunesmith.models import load_training_model, loading

    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "load_model_folder", lambda *a, **k: pytest.fail("a model was loaded"))
    config = run_config(tiny_model_dir, "qlora")
    assert error_of(lambda: load_training_model(config, torch.device("cpu"))) == (
        "config: method: qlora quantizes the base model with bitsandbytes' 4-bit CUDA kernels, and this machine has "
        "no CUDA GPU (use method: lora (or dora) here, or run on an NVIDIA GPU)")


def test_qlora_without_bitsandbytes_says_how_to_install_it(monkeypatch, error_of):
    from tunesmith.models import check_method_available, loading

    real = loading.importlib.util.find_spec
    monkeypatch.setattr(loading.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name, *args: None if name == "bitsandbytes" else real(name, *args))
    assert error_of(lambda: check_method_available("qlora")) == (
        "config: method: qlora needs the bitsandbytes package, which is not installed (pip install bitsandbytes, "
        "or use method: lora)")
    for method in ("lora", "dora", "full"):
        check_method_available(method)


def test_qlora_quantizes_to_nf4_with_double_quantization_and_bf16_compute():
    from tunesmith.models.loading import four_bit_config

    quantization = four_bit_config()
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant and quantization.bnb_4bit_compute_dtype == torch.bfloat16
