"""Kernel choices: `model.attention` resolved per device and dtype, and `flash_attention_2` or `train.liger` asked
for where they cannot run is one ConfigError naming the key before any weights load. On a GPU (`pytest -m gpu`):
Liger's kernels give the model's own loss."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from tunesmith.config import ModelConfig
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.models import kernels, load_base_model, load_model_folder
from tunesmith.models.kernels import attention_implementation
from tunesmith.predict.loss import supervised_loss_sum
from tunesmith.predict.model_inputs import collate

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def no_weights_load(monkeypatch):
    """Any attempt to load weights fails the test: the errors here must come first."""
    from transformers import AutoModelForCausalLM

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded before the config error")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


@pytest.fixture()
def flash_attn_missing(monkeypatch):
    real = kernels.import_problem
    monkeypatch.setattr(kernels, "import_problem",
                        lambda module: "No module named 'flash_attn'" if module == "flash_attn" else real(module))


@pytest.fixture()
def flash_attn_present(monkeypatch):
    real = kernels.import_problem
    monkeypatch.setattr(kernels, "import_problem", lambda module: None if module == "flash_attn" else real(module))


def test_auto_is_the_architectures_own_choice_on_cpu_and_in_float32():
    """None lets transformers pick (sdpa where the architecture supports it, eager for Gemma 2)."""
    assert attention_implementation("auto", CPU, torch.float32) is None
    assert attention_implementation("auto", CPU, torch.bfloat16) is None


def test_auto_is_flash_attention_on_a_gpu_in_half_precision_where_flash_attn_imports(flash_attn_present):
    assert attention_implementation("auto", CUDA, torch.bfloat16) == "flash_attention_2"
    assert attention_implementation("auto", CUDA, torch.float16) == "flash_attention_2"
    assert attention_implementation("auto", CUDA, torch.float32) is None
    assert attention_implementation("auto", CUDA, "auto") is None  # saved dtype: unknown before the load


def test_auto_is_the_architectures_own_choice_on_a_gpu_without_flash_attn(flash_attn_missing):
    assert attention_implementation("auto", CUDA, torch.bfloat16) is None


@pytest.mark.parametrize("name", ["sdpa", "eager"])
def test_sdpa_and_eager_run_anywhere(name):
    assert attention_implementation(name, CPU, torch.float32) == name


def test_flash_attention_without_cuda_is_a_config_error_before_the_load(tiny_model_dir, no_weights_load, error_of):
    config = ModelConfig(name=str(tiny_model_dir), attention="flash_attention_2")
    assert error_of(lambda: load_model_folder(tiny_model_dir, config, CPU)) == (
        "config: model.attention: flash_attention_2 needs a CUDA GPU, and this model is loaded on the cpu (set "
        "model.attention: auto (FlashAttention where it can run, else sdpa) or sdpa)")


def test_flash_attention_without_the_package_is_a_config_error(flash_attn_missing, error_of):
    message = error_of(lambda: attention_implementation("flash_attention_2", CUDA, torch.bfloat16))
    assert message.startswith("config: model.attention: flash_attention_2 needs the flash_attn package, which does "
                              "not import here (No module named 'flash_attn'); pip install flash-attn")


def test_flash_attention_in_float32_is_a_config_error(flash_attn_present, error_of):
    message = error_of(lambda: attention_implementation("flash_attention_2", CUDA, torch.float32))
    assert message.startswith("config: model.attention: flash_attention_2 computes in bfloat16 or float16 only, and "
                              "the model's dtype is float32")


def test_the_chosen_attention_reaches_the_model(tiny_model_dir):
    for name in ("eager", "sdpa"):
        model = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir), attention=name), CPU)
        assert model.config._attn_implementation == name


def test_liger_without_cuda_is_a_config_error_before_the_load(tiny_model_dir, no_weights_load, error_of):
    assert error_of(lambda: load_base_model(ModelConfig(name=str(tiny_model_dir)), CPU, liger=True)) == (
        "config: train.liger: Liger's kernels are Triton GPU kernels, and this run is on the cpu (set train.liger: "
        "false)")


def test_liger_without_the_package_is_a_config_error(tiny_model_dir, monkeypatch, error_of):
    monkeypatch.setattr(kernels, "import_problem", lambda module: "No module named 'liger_kernel'")
    assert error_of(lambda: kernels.check_liger(CUDA, tiny_model_dir)) == (
        "config: train.liger: the liger-kernel package does not import here (No module named 'liger_kernel') "
        "(pip install liger-kernel, or set train.liger: false)")


def test_liger_for_a_model_type_it_lacks_is_a_config_error(tiny_model_dir, monkeypatch, error_of):
    # A stand-in for liger_kernel that knows one other model type: the check reads the folder's config.json only.
    monkeypatch.setattr(kernels, "import_problem", lambda module: None)
    monkey_patch = types.ModuleType("liger_kernel.transformers.monkey_patch")
    monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN = {"qwen2": None}
    for name in ("liger_kernel", "liger_kernel.transformers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.monkey_patch", monkey_patch)
    assert error_of(lambda: kernels.check_liger(CUDA, tiny_model_dir)) == (
        "config: train.liger: Liger has no kernels for 'llama' models (set train.liger: false)")


# ---- on a GPU ---------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_auto_picks_flash_attention_where_it_imports(cuda_with_flash_attn):
    assert attention_implementation("auto", cuda_with_flash_attn, torch.bfloat16) == "flash_attention_2"


@pytest.mark.gpu
def test_liger_kernels_give_the_same_loss_and_gradients(cuda_with_liger, tiny_model_dir, tiny_tokenizer, spam_examples):
    device = cuda_with_liger
    config = ModelConfig(name=str(tiny_model_dir), dtype="bfloat16")
    rows, _ = tokenize_examples(spam_examples(6), tiny_tokenizer, max_length=128)
    batch = {key: value.to(device) for key, value in collate(rows, tiny_tokenizer.pad_token_id).items()}

    def loss_and_grads(model):
        model.train()
        loss_sum, count = supervised_loss_sum(model, batch)
        loss = loss_sum / count
        loss.backward()
        return float(loss), {name: p.grad.float() for name, p in model.named_parameters() if p.grad is not None}

    reference_loss, reference_grads = loss_and_grads(load_base_model(config, device)[0])
    liger_model = load_base_model(config, device, liger=True)[0]
    assert liger_model.model.norm._get_name() == "LigerRMSNorm"  # Liger rebinds the instance's forward
    loss, grads = loss_and_grads(liger_model)
    assert abs(loss - reference_loss) <= 1e-2 * abs(reference_loss)
    for name, grad in reference_grads.items():
        assert float((grads[name] - grad).norm() / grad.norm()) <= 5e-2, name  # bf16 operands, different kernels
