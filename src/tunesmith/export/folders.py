"""Export a run for use outside tunesmith.

``adapter/`` (runs of an adapter method: LoRA, DoRA, QLoRA) is the PEFT adapter plus the tokenizer and a model
card, so it says what it is and how to load it; its config names the base by a name that loads elsewhere (the
Hub id when there is one, `tunesmith.models.portable_name`). ``merged/`` is a plain Hugging Face model folder (the
adapter merged into the base weights, or the full fine-tune's weights) that ``transformers`` alone loads: no
peft, no tunesmith. Both are written beside
their final places and then replaced together, so an interrupted export never leaves half a model where a
previous good one was, and the two always come from the same export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tunesmith import __version__
from tunesmith.atomic import staged_folders, write_atomic
from tunesmith.config import RunConfig, dump_config
from tunesmith.config.vocabulary import METHODS, uses_adapter
from tunesmith.document import NOT_AVAILABLE, Block, Code, Document, Section, Text, render_markdown
from tunesmith.errors import RunError
from tunesmith.json_files import read_json
from tunesmith.models import load_base_model, load_model_folder, load_tokenizer, portable_name, stop_token_ids
from tunesmith.models.init_from import check_init_from
from tunesmith.models.loading import load_adapter
from tunesmith.results import baseline_verdict, comparison_table
from tunesmith.results.gate import gate_state, gate_summary_blocks
from tunesmith.run_dir import RunDir, locked

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What a PEFT adapter checkpoint needs; anything else in the checkpoint folder (e.g. training state) is not
exported."""
CARD_FILE = "README.md"
CPU_ATTENTION = "auto"
"""Exports load on the CPU and run no forward pass, so the attention kernel is irrelevant there (`auto` on a CPU
is the architecture's own default): a run trained with `model.attention: flash_attention_2` on a GPU still
exports on a machine without one."""


@locked
def export_run(config: RunConfig, run: RunDir) -> dict[str, str]:
    """The pipeline's export stage: write ``adapter/`` (adapter methods only) and ``merged/`` into the run folder;
    return ``{kind: folder}``. Both are staged first and replaced together, so they always come from one
    export (`tunesmith.atomic.staged_folders`)."""
    best = run.best_weights()
    check_init_from(run, config)  # model.init_from: the weights this run's adapter applies on top of are unchanged
    eval_data = read_json(run.eval_json)
    run_name = run.root.resolve().name
    tokenizer = load_tokenizer(config.model)
    adapter = uses_adapter(config.method)
    if adapter:
        check_adapter_folder(best, config.method)
        model = merged_lora_model(config, best)  # first: if the adapter is unusable, nothing is replaced
    else:
        model = full_checkpoint_model(config, best)
    # transformers 4 writes the name a model was loaded from into config.json (`_name_or_path`): the base's name
    # that loads elsewhere, not a path on this machine.
    model.config.name_or_path = portable_name(config.model)
    kinds = ["adapter", "merged"] if adapter else ["merged"]
    with staged_folders(run.root, kinds) as staging:
        if adapter:
            for name in ADAPTER_FILES:
                shutil.copy2(best / name, staging["adapter"] / name)
            tokenizer.save_pretrained(staging["adapter"])
            card = model_card(run_name, config, eval_data, kind="adapter", folder=run.adapter, run_root=run.root)
            (staging["adapter"] / CARD_FILE).write_text(card, encoding="utf-8")
        save_standalone(model, tokenizer, staging["merged"])
        card = model_card(run_name, config, eval_data, kind="merged", folder=run.merged, run_root=run.root)
        (staging["merged"] / CARD_FILE).write_text(card, encoding="utf-8")
    return {kind: str(run.root / kind) for kind in kinds}


def write_model_cards(config: RunConfig, run: RunDir) -> list[Path]:
    """Write the model card of each folder the run has exported again, from the run's files as they are now; return
    the cards written. `tunesmith gate` judges a run after its export (it measures the export's size), so it calls
    this to make the cards say the gate's result."""
    eval_data = read_json(run.eval_json)
    run_name = run.root.resolve().name
    written = []
    for kind, folder in (("adapter", run.adapter), ("merged", run.merged)):
        if (folder / CARD_FILE).is_file():
            write_atomic(folder / CARD_FILE, model_card(run_name, config, eval_data, kind, folder, run.root))
            written.append(folder / CARD_FILE)
    return written


def check_adapter_folder(folder: Path, method: str) -> None:
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise RunError(
            f"{folder} is not a LoRA adapter checkpoint (missing {', '.join(missing)})",
            f"re-run `tunesmith train`; the config says method: {method}",
        )


def merged_lora_model(config: RunConfig, adapter_folder: Path):
    """The base model with the adapter folded into its weights, computed in fp32 on CPU. For a run with
    `model.init_from` the base is that run's merged weights (`load_base_model`): merged/ holds both.

    fp32 because merging adds a low-rank product to every target weight: in bf16 that sum rounds away much
    of a small update. CPU because the merge is a one-off that must not need (or fight for) a GPU. The base is
    read from the local files it was trained from (never the Hub), unquantized: a QLoRA adapter merges into the
    full-precision weights, since 4-bit weights cannot hold the sum.
    """
    fp32 = config.model.model_copy(update={"dtype": "float32", "attention": CPU_ATTENTION})
    base, _ = load_base_model(fp32, device=torch.device("cpu"))
    # safe_merge checks the merged weights for NaNs before replacing the originals.
    return load_adapter(base, adapter_folder).merge_and_unload(safe_merge=True)


def full_checkpoint_model(config: RunConfig, checkpoint: Path):
    """The full fine-tune's weights, in the dtype they were saved in, on CPU (an export must not need a GPU)."""
    model_config = config.model.model_copy(update={"attention": CPU_ATTENTION})
    return load_model_folder(checkpoint, model_config, device=torch.device("cpu"), dtype="auto")


def save_standalone(model, tokenizer, folder: Path) -> None:
    """Save a model so that ``AutoModelForCausalLM.from_pretrained(folder)`` gives a ready-to-generate model."""
    # Training turns the KV cache off (it only costs memory there); generation needs it back on.
    model.config.use_cache = True
    # A base converted from a quantized GGUF can still carry the quantization config though its weights are
    # plain floats now; left in config.json, it would make transformers try to quantize again on load.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    stop_ids = stop_token_ids(model, tokenizer)
    model.generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)  # safetensors, transformers' default format
    tokenizer.save_pretrained(folder)


def model_card(run_name: str, config: RunConfig, eval_data: dict | None, kind: str, folder: Path,
               run_root: Path) -> str:
    """The README.md of an exported folder: what the model is, how to load it, how it scored, whether it passed
    its release gate (the run folder ``run_root``'s gate.json), how it was made."""
    base = portable_name(config.model)
    base_text = base + (f" (revision {config.model.revision})" if config.model.revision else "")
    method = METHODS[config.method]
    if uses_adapter(config.method):
        method += (f" r={config.lora.r}, alpha={config.lora.alpha:g}, targets "
                   f"{', '.join(config.lora.target_modules)}")
    source = Path(config.model.init_from) if config.model.init_from else None
    made_from = (base_text if source is None
                 else f"the run {source.name} ({base_text} with that run's weights merged in)")
    if kind == "adapter" and source is not None:
        title = f"{run_name}: {METHODS[config.method]} adapter"
        usage = (
            "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"base = AutoModelForCausalLM.from_pretrained({str(source / 'merged')!r})\n"
            f"model = PeftModel.from_pretrained(base, {str(folder)!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})\n"
        )
    elif kind == "adapter":
        title = f"{run_name}: {METHODS[config.method]} adapter"
        usage = (
            "from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
            f"model = AutoPeftModelForCausalLM.from_pretrained({str(folder)!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})\n"
        )
    else:
        title = f"{run_name}: merged model"
        usage = (
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"model = AutoModelForCausalLM.from_pretrained({str(folder)!r})\n"
            f"tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})\n"
        )
    if eval_data is None:
        evaluation = [Text(f"{NOT_AVAILABLE} (the run was not evaluated before export)")]
    else:
        against_baseline = baseline_verdict(eval_data)
        evaluation = [comparison_table(eval_data), *([Text(against_baseline)] if against_baseline else [])]
    on_top = [] if source is None or kind != "adapter" else [Text(
        f"This adapter applies on top of the merged weights of the run {source.name}, not on {base} alone: "
        f"running tunesmith export {source} writes them to {source / 'merged'}. The merged/ folder beside this one "
        "holds both, ready to load.")]
    card = Document(
        title=title,
        subtitle=f"Fine-tuned from {made_from} with tunesmith {__version__} ({method}).",
        sections=[
            Section("Usage", [*on_top, Code(usage, "python")]),
            Section("Evaluation", evaluation),
            Section("Release gate", gate_card_blocks(run_root)),
            Section("Config", [Code(dump_config(config), "yaml")]),
        ],
    )
    return render_markdown(card)


def gate_card_blocks(run_root: Path) -> list[Block]:
    """The card's gate result: the gate in brief (`tunesmith.results.gate.gate_summary_blocks`), or that the run was
    not gated (or its gate.json cannot be read) when the card was written."""
    state, gate, line = gate_state(run_root)
    if gate is not None:
        return gate_summary_blocks(gate, run_root.resolve().name, stale=state == "stale")
    if state == "unreadable":
        return [Text(f"The gate's result cannot be read: {line}")]
    return [Text(f"Not gated when this card was written: `tunesmith gate {run_root.resolve().name}` judges whether "
                 "the run may replace the model in service.")]
