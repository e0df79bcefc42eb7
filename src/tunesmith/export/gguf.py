"""Export a run as one GGUF file for llama.cpp and Ollama, with an Ollama ``Modelfile`` beside it.

The GGUF is converted from the run's ``merged/`` export (a plain transformers Llama folder, written first when it
is missing) with the `gguf` package: its writer, its tensor name map, its Q8_0 quantizer and its vocabulary
readers (`gguf.vocab.BpeVocab`, `gguf.SpecialVocab`). What llama.cpp's ``convert_hf_to_gguf.py`` adds on top of
them for a Llama, and the package lacks, is written here: the model's metadata keys, the rotary layout of the q/k
projections, the types of special tokens and the name of the pre-tokenizer. transformers' GGUF loader reads the
file back, and the tests hold its logits and token ids to ``merged/``'s.

The GGUF and the Modelfile each replace their previous version whole (`tunesmith.atomic`); a GGUF of another
quantization stays beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors import safe_open

from tunesmith.atomic import staged_file, write_atomic
from tunesmith.config import RunConfig
from tunesmith.config.schema import ModelConfig
from tunesmith.config.vocabulary import DEFAULT_GGUF_QUANT
from tunesmith.errors import RunError
from tunesmith.export.folders import export_run
from tunesmith.json_files import read_json
from tunesmith.models import source_gguf
from tunesmith.results.freshness import export_is_stale
from tunesmith.run_dir import RunDir, locked

log = logging.getLogger("tunesmith")

TENSOR_TYPES = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}
FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
MODEL_TYPES = ("llama",)
"""transformers `model_type`s this writer converts. transformers' GGUF loader also reads mistral and qwen2 files,
but their conversions (sentencepiece vocabularies, q/k layouts, biases, sliding windows) are not written or tested
here, so they are refused rather than written wrong."""
MODELFILE = "Modelfile"
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"
CHATML_OLLAMA_TEMPLATE = """\
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}"""
"""ChatML as a Go template (Ollama's), rendering what the Jinja ChatML templates render: a turn is
``<|im_start|>role\\ncontent<|im_end|>\\n``, and a conversation that ends with the user asks for the assistant's
turn. Ollama passes system messages in ``.System`` (the Modelfile's SYSTEM when a request has none), so the loop
renders only user and assistant turns."""


@locked
def export_gguf(config: RunConfig, run: RunDir, quant: str = DEFAULT_GGUF_QUANT) -> Path:
    """Write ``gguf/<run-name>-<quant>.gguf`` and ``gguf/Modelfile`` into the run folder, converted from its
    ``merged/`` export (which is written first when it is missing); return the GGUF's path."""
    from transformers import AutoTokenizer

    if quant not in TENSOR_TYPES:
        raise RunError(f"unknown GGUF quantization {quant!r}", f"use one of: {', '.join(TENSOR_TYPES)}")
    if not (run.merged / "config.json").is_file():
        log.info("%s is missing: exporting it first", run.merged)
        export_run(config, run)
    elif export_is_stale(run.best, run.merged):
        log.info("%s is older than the best weights: exporting it again first", run.merged)
        export_run(config, run)
    hparams = read_json(run.merged / "config.json")
    check_convertible(hparams)
    tokenizer = AutoTokenizer.from_pretrained(run.merged)  # the run's tokenizer and chat template, as exported
    run_name = run.root.resolve().name
    path = run.gguf / f"{run_name}-{quant}.gguf"
    modelfile = ollama_modelfile(path.name, tokenizer, config.data.system_prompt)  # before the GGUF: it may refuse
    pre_tokenizer = pre_tokenizer_name(config.model, run.merged)
    with staged_file(path) as staging:
        writer = gguf.GGUFWriter(staging, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        try:
            add_model_metadata(writer, hparams, run_name, quant)
            add_vocabulary(writer, run.merged, hparams, tokenizer, pre_tokenizer)
            kept_f16 = add_tensors(writer, run.merged, hparams, TENSOR_TYPES[quant])
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()  # also when a write fails, so the staging file it had open is closed before it goes
    write_atomic(run.gguf / MODELFILE, modelfile)
    if kept_f16:
        log.info("kept in f16 (rows not a multiple of q8_0's 32-value blocks): %s", ", ".join(kept_f16))
    log.info("wrote %s (%.1f MiB) and %s", path, path.stat().st_size / 2**20, path.parent / MODELFILE)
    return path


def check_convertible(hparams: dict) -> None:
    """A `RunError` unless ``merged/config.json`` describes a model this writer converts."""
    hint = "export with --format hf and convert merged/ with llama.cpp's convert_hf_to_gguf.py"
    model_type = hparams.get("model_type")
    if model_type not in MODEL_TYPES:
        raise RunError(f"GGUF export converts Llama-family models (model_type {', '.join(MODEL_TYPES)}); this run's "
                       f"model is {model_type!r}", hint)
    rope_type = rope_parameters(hparams).get("rope_type", "default")
    if rope_type != "default":
        # llama.cpp needs extra tensors (rope_freqs) and keys for scaled RoPE, which transformers' loader ignores,
        # so such a file could not be checked here.
        raise RunError(f"GGUF export writes plain RoPE only; this model's RoPE is {rope_type!r}", hint)


def rope_parameters(hparams: dict) -> dict:
    """RoPE settings in either spelling: transformers 5's ``rope_parameters``, or 4's ``rope_theta`` and
    ``rope_scaling``."""
    legacy = dict(hparams.get("rope_scaling") or {})
    if "type" in legacy:
        legacy["rope_type"] = legacy.pop("type")
    return {"rope_theta": hparams.get("rope_theta", 10000.0), **legacy, **(hparams.get("rope_parameters") or {})}


def add_model_metadata(writer: gguf.GGUFWriter, hparams: dict, name: str, quant: str) -> None:
    """The ``general.*`` and ``llama.*`` keys llama.cpp's converter writes for a Llama (`LlamaModel`)."""
    heads = hparams["num_attention_heads"]
    head_dim = hparams.get("head_dim") or hparams["hidden_size"] // heads
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(FILE_TYPES[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(hparams["vocab_size"])
    writer.add_context_length(hparams["max_position_embeddings"])
    writer.add_embedding_length(hparams["hidden_size"])
    writer.add_block_count(hparams["num_hidden_layers"])
    writer.add_feed_forward_length(hparams["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(hparams.get("num_key_value_heads") or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_parameters(hparams)["rope_theta"])
    writer.add_layer_norm_rms_eps(hparams["rms_norm_eps"])
    if head_dim != hparams["hidden_size"] // heads:  # llama.cpp assumes hidden_size / heads unless told
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def add_vocabulary(writer: gguf.GGUFWriter, merged: Path, hparams: dict, tokenizer, pre_tokenizer: str) -> None:
    """The byte-level BPE vocabulary as llama.cpp's ``tokenizer.ggml.*`` keys, with merges, special token ids, the
    BOS flag and the chat template (`gguf.SpecialVocab`)."""
    try:
        vocab = gguf.vocab.BpeVocab(merged)
    except FileNotFoundError:  # BpeVocab's way of saying "not byte-level BPE"
        raise RunError("GGUF export converts byte-level BPE tokenizers (GPT-2 style, as SmolLM's); this run's "
                       "tokenizer is another kind (sentencepiece, or BPE with byte fallback)",
                       "export with --format hf and convert merged/ with llama.cpp's convert_hf_to_gguf.py") from None
    size = hparams["vocab_size"]
    tokens = [token.decode("utf-8") if isinstance(token, bytes) else token for token, _, _ in vocab.all_tokens()]
    if len(tokens) > size:
        raise RunError(f"the tokenizer has {len(tokens)} tokens but the model embeds only {size}",
                       "the run's merged/ export is inconsistent; export it again with --format hf")
    # BpeVocab types every token of the BPE model NORMAL, also special tokens trained into it (SmolLM2's
    # <|im_start|>); llama.cpp types them CONTROL (special) or USER_DEFINED, else it splits them like text.
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for token_id, added in tokenizer.added_tokens_decoder.items():
        types[token_id] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    # Embedding rows past the tokenizer (a vocabulary padded to a round size) get placeholders, as in llama.cpp.
    tokens += [f"[PAD{token_id}]" for token_id in range(len(tokens), size)]
    types += [gguf.TokenType.UNUSED] * (size - len(types))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(merged, load_merges=True, n_vocab=size)
    # Measured on the tokenizer: SpecialVocab reads add_bos_token from tokenizer_config.json, where the tokenizers
    # transformers 5 saves do not write it (SmolLM2's, the tests' tiny one).
    special.add_special_token["bos"] = adds_bos(tokenizer)
    special.add_to_gguf(writer, quiet=True)


def adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id]


def pre_tokenizer_name(model: ModelConfig, merged: Path) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE (``tokenizer.ggml.pre``; llama.cpp refuses a
    name it does not know): the base's own GGUF's when the base came from one, else read off ``tokenizer.json``."""
    source = source_gguf(model)
    if source is not None:
        # The run's tokenizer is transformers' reading of that GGUF, which drops the split the name stands for
        # (SmolLM2's `smollm` puts each digit apart; its vocabulary has no multi-digit tokens, so both agree).
        field = gguf.GGUFReader(source).get_field("tokenizer.ggml.pre")
        if field is not None:
            return field.contents()
    pre = read_json(merged / "tokenizer.json").get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    kinds = [step.get("type") for step in steps]
    regex = [step.get("use_regex", True) for step in steps if step.get("type") == "ByteLevel"]
    if kinds == ["ByteLevel"] and regex == [True]:
        return "gpt-2"  # ByteLevel's own split is GPT-2's regex, which llama.cpp's gpt-2 applies
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and regex == [True]:
        return "smollm"  # digits one by one, then GPT-2's regex
    raise RunError(f"the tokenizer splits text in a way this GGUF writer does not name for llama.cpp ({kinds})",
                   "export with --format hf and convert merged/ with llama.cpp's convert_hf_to_gguf.py")


def add_tensors(writer: gguf.GGUFWriter, merged: Path, hparams: dict,
                tensor_type: gguf.GGMLQuantizationType) -> list[str]:
    """Every weight of ``merged/`` under its GGUF name, in ``tensor_type``; 1-D tensors (norms) stay f32, as
    llama.cpp keeps them. Returns the tensors q8_0 could not hold and that were written f16 instead."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, hparams["num_hidden_layers"])
    heads = hparams["num_attention_heads"]
    kv_heads = hparams.get("num_key_value_heads") or heads
    tied = hparams.get("tie_word_embeddings", False)  # LlamaConfig's default
    kept_f16 = []
    for file in sorted(merged.glob("*.safetensors")):
        with safe_open(file, framework="pt") as weights:
            for hf_name in weights.keys():
                if tied and hf_name == "lm_head.weight":
                    continue  # without output.weight llama.cpp reads the embedding as the output layer
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise RunError(f"{file}: tensor {hf_name} has no place in a llama GGUF",
                                   "export with --format hf and convert merged/ with llama.cpp's tools")
                data = weights.get_tensor(hf_name).to(torch.float32)
                if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                    data = interleave_rotary_halves(data, heads)
                elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                    data = interleave_rotary_halves(data, kv_heads)
                array = data.numpy()
                if array.ndim <= 1:
                    writer.add_tensor(name, array)
                    continue
                try:
                    writer.add_tensor(name, gguf.quants.quantize(array, tensor_type), raw_dtype=tensor_type)
                except gguf.quants.QuantError:  # rows not a multiple of the block size
                    kept_f16.append(name)
                    writer.add_tensor(name, array.astype(np.float16))
    return kept_f16


def interleave_rotary_halves(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder each head's rows of a q/k projection from transformers' RoPE layout to llama.cpp's.

    transformers rotates dimension i of a head with dimension i + d/2 (``rotate_half``); llama.cpp's Llama rotates
    neighbours 2i and 2i+1. So the rows of each head, [first half; second half], are interleaved: h0, h(d/2), h1,
    h(d/2+1), ... transformers' GGUF loader applies the inverse when it reads the file.
    """
    shape = weight.shape
    return weight.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).transpose(1, 2).reshape(shape)


def ollama_modelfile(gguf_name: str, tokenizer, system_prompt: str | None) -> str:
    """The Ollama Modelfile for the GGUF: for a ChatML chat template, ChatML as a Go template and ``<|im_end|>``
    as the stop; the system prompt the run was trained with; greedy decoding, as the run was evaluated."""
    chatml = CHATML_START in (tokenizer.chat_template or "")
    lines = [f"FROM {ollama_value('./' + gguf_name, bare=True)}"]
    if chatml:
        lines.append(f"TEMPLATE {ollama_value(CHATML_OLLAMA_TEMPLATE)}")
        if system_prompt is None:
            system_prompt = default_system_turn(tokenizer)
    else:
        lines.append("# No TEMPLATE: Ollama uses the chat template stored in the GGUF (tokenizer.chat_template).")
    if system_prompt:
        lines.append(f"SYSTEM {ollama_value(system_prompt)}")
    if chatml:
        lines.append(f"PARAMETER stop {ollama_value(CHATML_END)}")
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"


def default_system_turn(tokenizer) -> str | None:
    """The system message a ChatML template writes into a conversation that has none (SmolLM2's and tunesmith's
    built-in do): training and `tunesmith chat` saw it, so Ollama should send it too."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "?"}], tokenize=False)
    opening = f"{CHATML_START}system\n"
    if not rendered.startswith(opening):
        return None
    return rendered[len(opening):].split(CHATML_END, 1)[0]


def ollama_value(text: str, bare: bool = False) -> str:
    """``text`` written so that Ollama's Modelfile parser reads it back unchanged, else a `RunError`.

    The parser knows no escapes: a value ends at the first line break where what came before (trimmed) is whole,
    i.e. ``"..."``, ``\"\"\"...\"\"\"`` or a bare word. So each way of writing it is tried against that rule.
    """
    multiline = "\n" in text or "\r" in text
    forms = [f'"""{text}"""', f'"{text}"'] if multiline else [f'"{text}"', f'"""{text}"""']
    for written in ([text] if bare else []) + forms:
        if ollama_reads(written) == text:
            return written
    raise RunError(f"{text[:40]!r}... cannot be written into an Ollama Modelfile (a line of it ends in quotes)",
                   "reword data.system_prompt so that no line ends with a double quote")


def ollama_reads(written: str) -> str | None:
    """What Ollama's Modelfile parser (``parser.ParseFile``) reads from a value written as ``written``."""
    for end in [i for i, char in enumerate(written) if char in "\r\n"] + [len(written)]:
        value = written[:end].strip()
        if value.startswith('"""'):
            whole = len(value) >= 6 and value.endswith('"""')
            cut = 3
        elif value.startswith('"'):
            whole = len(value) >= 2 and value.endswith('"')
            cut = 1
        else:
            whole, cut = True, 0
        if whole:
            return value[cut:len(value) - cut]
    return None
