"""Load tokenizers and models (base, tuned, any saved model folder) and prepare a model for training by
`method` (LoRA, DoRA, QLoRA, full; gradient checkpointing).

Every model folder is loaded by `load_model_folder`: safetensors only, `trust_remote_code` as configured, the
dtype chosen once (`pick_dtype`), the KV cache off (training does not use it; generation turns it back on per
call). transformers, peft and bitsandbytes are imported inside the functions that use them: together they take
several seconds to import, which commands that never load a model (`config`, `report`, a data check that fails on
the file) should not pay.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from pathlib import Path

import torch
from safetensors import SafetensorError

from tunesmith import distributed
from tunesmith.config.schema import LoraConfig, ModelConfig, RunConfig
from tunesmith.config.vocabulary import uses_adapter
from tunesmith.errors import ConfigError, ModelError
from tunesmith.models.init_from import check_init_from, init_chain
from tunesmith.models.kernels import apply_liger, attention_implementation, check_liger
from tunesmith.models.lora_fused import fuse_lora_epilogues
from tunesmith.models.provision import portable_name, resolve_model
from tunesmith.models.templates import apply_chat_template_choice
from tunesmith.run_dir import RunDir
from tunesmith.text import shorten


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The configured dtype; for `auto`, bf16 on GPUs that support it, else fp32 (the CPU trade-off is measured
    in BENCHMARKS.md, "CPU precision")."""
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def matmul_seconds(size: int = 1024, dtype: torch.dtype = torch.float32, repeats: int = 3) -> float:
    """Median time of one ``size``x``size`` matmul on the CPU, after a warm-up; inputs come from a private
    generator, so the global RNG (seeded for training) is never touched."""
    own_rng = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=own_rng).to(dtype) for _ in range(2))
    a @ b
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2]


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a 1024x1024 matmul on this CPU: logged so a user can see whether
    `model.dtype: bfloat16` would pay off here."""
    return matmul_seconds(dtype=torch.float32) / matmul_seconds(dtype=torch.bfloat16)


def load_tokenizer(model_config: ModelConfig):
    """The model's tokenizer with the chat template `model.chat_template` chooses, so training, evaluation,
    chat and export (which saves this tokenizer) all render conversations the same way."""
    from transformers import AutoTokenizer

    folder = model_folder(model_config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=model_config.trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder} has no usable tokenizer: {shorten(str(exc), 200)}",
                         "a model folder needs its tokenizer files (tokenizer.json or the files of a slow "
                         "tokenizer), as save_pretrained writes them") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return apply_chat_template_choice(tokenizer, model_config.chat_template)


def load_model_folder(folder: str | Path, model_config: ModelConfig, device: torch.device | None = None,
                      dtype: torch.dtype | str | None = None, quantization_config=None):
    """The causal LM saved in ``folder``, in eval mode on ``device`` (default: GPU if any, else CPU), with the
    attention implementation `model.attention` chooses (`tunesmith.models.kernels`).

    ``dtype`` defaults to `pick_dtype` of ``model.dtype``; ``"auto"`` keeps the dtype the weights were saved in.
    ``quantization_config`` (transformers' `BitsAndBytesConfig`) loads the weights quantized, straight onto
    ``device``: a quantized model cannot be moved after loading.
    """
    from transformers import AutoModelForCausalLM

    device = device or distributed.device()
    dtype = dtype or pick_dtype(model_config.dtype, device)
    attention = attention_implementation(model_config.attention, device, dtype)  # before the load: errors early
    placement = {"device_map": {"": device}, "quantization_config": quantization_config} if quantization_config else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, attn_implementation=attention,
            trust_remote_code=model_config.trust_remote_code, **placement,
        )
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ModelError(f"cannot load the model in {folder}: {shorten(str(exc), 200)}",
                         rewrite_hint(Path(folder), "its weights are damaged or incomplete (an empty or cut-off "
                                                    ".safetensors file?); save or copy the model again")) from None
    model.config.use_cache = False
    return (model if quantization_config else model.to(device)).eval()


def load_base_model(model_config: ModelConfig, device: torch.device | None = None, four_bit: bool = False,
                    liger: bool = False):
    """The base model and its tokenizer, in eval mode on ``device`` (default: GPU if any, else CPU): the pretrained
    model, or with `model.init_from` that run's best weights merged (`init_from_weights`), so every stage that loads
    "the base" (training, evaluation's base column, the gate, export's merge, serve, review, chat) gets the model
    the run continues from. ``four_bit`` quantizes the weights to 4-bit NF4 as they load (QLoRA); ``liger``
    (`train.liger`) swaps Liger's fused kernels into the model (whether they can run here is checked before the
    weights load)."""
    device = device or distributed.device()
    if model_config.init_from is not None and four_bit:
        raise ConfigError("model.init_from", "qlora quantizes its base as the weights load, and a run's merged "
                          "weights are built in memory", "continue from a run with method: lora (or dora)")
    chain = init_chain(model_config)  # [] without model.init_from; the runs checked before anything loads
    folder = model_folder(model_config)
    if liger:
        check_liger(device, folder)
    if chain:
        model = init_from_weights(chain[0], model_config, device)
    else:
        quantization = four_bit_config() if four_bit else None
        model = load_model_folder(folder, model_config, device, quantization_config=quantization)
    if liger:
        apply_liger(model)
    return model, load_tokenizer(model_config)


def init_from_weights(source: RunDir, model_config: ModelConfig, device: torch.device):
    """The best weights of ``source``, the `model.init_from` run (checked: `tunesmith.models.init_from`), as one
    model in eval mode on ``device``: its adapter merged into its own base (for a run that itself continues from
    another, that base is built the same way: the recursion walks the chain), or a full run's weights.

    The merge runs in fp32, as export merges (in bf16 the sum rounds away much of a small update), so a run starts
    from the weights export ships for its init_from run; the model is then cast to ``model.dtype`` tensor by
    tensor. Merging is in place: one copy of the model is held throughout, in fp32 until the cast.
    """
    source_config = source.config()
    dtype = pick_dtype(model_config.dtype, device)
    attention = attention_implementation(model_config.attention, device, dtype)  # before the load: errors early
    fp32 = source_config.model.model_copy(update={"dtype": "float32", "attention": "auto",
                                                  "offline": model_config.offline})
    best = source.best_weights()
    if uses_adapter(source_config.method):
        base, _ = load_base_model(fp32, device)
        model = load_adapter(base, best).merge_and_unload(safe_merge=True)
    else:
        model = load_model_folder(best, fp32, device)
    model = model.to(dtype)
    if attention is not None and attention != model.config._attn_implementation:
        model.set_attn_implementation(attention)  # chosen for fp32 as it loaded; this run computes in ``dtype``
    return model.eval()


def load_tuned_model(run_dir: str | Path, device: torch.device | None = None, merge: bool = False):
    """The fine-tuned model of a run (its best checkpoint) and the tokenizer, in eval mode.

    ``merge=True`` folds an adapter into the base weights: the same function, but inference no longer pays for
    the adapter's extra matmuls. A QLoRA adapter goes onto the unquantized base, as export merges it: what
    evaluation measures is the model export ships. For a run with `model.init_from` the base is that run's merged
    weights (`load_base_model`), and a run whose init_from weights changed since it trained is refused.
    """
    run = RunDir(run_dir)
    config = run.config()
    best = run.best_weights()
    check_init_from(run, config)
    if not uses_adapter(config.method):
        return load_model_folder(best, config.model, device), load_tokenizer(config.model)
    base, tokenizer = load_base_model(config.model, device)
    model = load_adapter(base, best)
    if merge:
        model = model.merge_and_unload()
    return model.eval(), tokenizer


def load_adapter(base, folder: Path, name: str = "default"):
    """``base`` with the PEFT adapter saved in ``folder`` added under ``name`` (``base`` may already be a peft model
    holding other adapters: the server serves several runs on one base); a damaged adapter is a one-line
    `ModelError`."""
    from peft import PeftModel

    try:
        if isinstance(base, PeftModel):
            base.load_adapter(folder, adapter_name=name)
            return base
        return PeftModel.from_pretrained(base, folder, adapter_name=name)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ModelError(f"cannot load the LoRA adapter in {folder}: {shorten(str(exc), 200)}",
                         rewrite_hint(Path(folder), "the saved weights are damaged; load an intact copy")) from None


def rewrite_hint(folder: Path, otherwise: str) -> str:
    """How to write damaged weights in ``folder`` again: a run's best weights from its checkpoints (a resume puts
    `best/` back from the checkpoint of its step, also on a finished run: `tunesmith.train.best`), a run's export by
    exporting again; ``otherwise`` for any other folder."""
    if folder.name == "best" and folder.parent.name == "checkpoints":
        run = RunDir(folder.parent.parent)
        return (f"the run's best weights are damaged; write them again from its checkpoints with `tunesmith train "
                f"{run.config_path} --resume --run-dir {run.root}`")
    run = RunDir(folder.parent)
    if folder in (run.adapter, run.merged) and run.config_path.is_file():
        return f"the export is damaged; write it again with `tunesmith export {run.root}`"
    return otherwise


# ---- preparing a model for training ------------------------------------------------------------------------------


def check_method_available(method: str) -> None:
    """`method: qlora` needs a CUDA GPU and bitsandbytes: a `ConfigError` naming `method` when either is missing.
    Called before anything is loaded or tokenized, so a run fails in its first second, not after the data."""
    if method != "qlora":
        return
    if not torch.cuda.is_available():
        raise ConfigError("method", "qlora quantizes the base model with bitsandbytes' 4-bit CUDA kernels, and this "
                          "machine has no CUDA GPU", "use method: lora (or dora) here, or run on an NVIDIA GPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("method", "qlora needs the bitsandbytes package, which is not installed",
                          "pip install bitsandbytes, or use method: lora")


def four_bit_config():
    """QLoRA's quantization: NF4 weights with double quantization (the scales quantized too), bf16 compute."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_training_model(config: RunConfig, device: torch.device):
    """The base model ready for `config.method` on ``device`` (quantized to 4-bit for qlora), and its tokenizer."""
    check_method_available(config.method)
    model, tokenizer = load_base_model(config.model, device, four_bit=config.method == "qlora",
                                       liger=config.train.liger)
    return prepare_for_training(model, config), tokenizer


def prepare_for_training(model, config: RunConfig):
    """``model`` as `config.method` trains it: every weight (`full`), or a frozen base with adapters (`lora`,
    `dora`, and `qlora` on its 4-bit base); with `train.gradient_checkpointing`, its decoder layers recompute their
    activations in the backward pass.

    Adapters name their base by `portable_name` and `model.revision`, so a saved adapter (checkpoints, export)
    loads onto the same base on another machine.
    """
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Freezes the base and upcasts its unquantized weights (norms, embeddings, head) to fp32 for stable
        # training; checkpointing is ours to turn on, below, the same way for every method.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if config.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if not uses_adapter(config.method):
        return model
    model = add_lora(model, config.lora, dora=config.method == "dora")
    adapter = model.peft_config["default"]
    adapter.base_model_name_or_path = portable_name(config.model)
    adapter.revision = config.model.revision
    return model


def enable_gradient_checkpointing(model) -> None:
    """Checkpoint every decoder layer of ``model`` (a *ForCausalLM), non-reentrant.

    transformers sets the flag on the layers themselves, so it also holds when the training loss calls the decoder
    body directly (`tunesmith.predict.loss`). The embeddings' output is made to require grad, as transformers 5 does
    itself: non-reentrant checkpointing does not need it, but a checkpointed block whose inputs need no grad
    (a frozen base under adapters) is where reentrant variants silently drop gradients.
    """
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5: gradient_checkpointing_enable renamed
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        model.enable_input_require_grads()


def add_lora(model, lora: LoraConfig, fuse: bool = True, dora: bool = False):
    """Wrap ``model`` with trainable LoRA adapters (peft); the base weights stay frozen. ``dora`` makes them DoRA
    adapters (weight-decomposed: a trained magnitude per output feature besides the low-rank direction). ``fuse``
    gives plain LoRA layers a faster forward that computes the same function (`tunesmith.models.lora_fused`; DoRA
    layers keep peft's)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    if targets != "all-linear":
        check_target_modules(model, targets)
    peft_config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM",
        use_dora=dora,
    )
    model = get_peft_model(model, peft_config)
    if fuse:
        fuse_lora_epilogues(model)
    return model


def check_target_modules(model, targets: list[str]) -> None:
    """Every name of `lora.target_modules` must match a linear layer, as peft matches them (the layer's name or
    its last part): peft would fail on all-wrong names with a traceback and skip a single wrong one silently."""
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    unmatched = [target for target in targets
                 if not any(name == target or name.endswith("." + target) for name in linear)]
    if unmatched:
        kinds = sorted({name.rsplit(".", 1)[-1] for name in linear})
        raise ConfigError("lora.target_modules", f"{', '.join(map(repr, unmatched))} matches no linear layer of "
                          "the model", f"the model's linear layers are: {', '.join(kinds)} (or use all-linear)")


def model_folder(model_config: ModelConfig) -> Path:
    return resolve_model(model_config)
