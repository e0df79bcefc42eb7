"""export_gguf: transformers' GGUF loader reads back the merged model's logits and tokens, with llama.cpp's metadata,
an Ollama Modelfile beside the file, and clear refusals of what it cannot convert."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import get_args

import gguf
import pytest
import torch

from tunesmith.cli import main
from tunesmith.config import ModelConfig, save_config
from tunesmith.config.vocabulary import GgufQuant
from tunesmith.export import export_gguf
from tunesmith.export.gguf import (
    CHATML_OLLAMA_TEMPLATE,
    TENSOR_TYPES,
    ollama_modelfile,
    ollama_reads,
    ollama_value,
    pre_tokenizer_name,
)
from tunesmith.run_dir import RunDir

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "WINNER!! You have won a free prize, call now 0800 123 456 to claim your cash reward.",
    "Hey, are we still meeting for lunch tomorrow? I'll bring the notes.",
]
CONVERSATION = [
    {"role": "system", "content": "Classify the message as ham or spam."},
    {"role": "user", "content": "Translate to German: A man is riding a bicycle."},
    {"role": "assistant", "content": "Ein Mann fährt Fahrrad."},
]
F16_TOLERANCE = 1e-2
"""Largest |logit difference| allowed for f16 (measured: 7e-4 on the tiny model)."""
Q8_0_TOLERANCE = 0.1
"""Largest |logit difference| allowed for q8_0, as a share of the largest |logit|: about twice what the tiny runs
measure (their LoRA A matrices start from the global RNG, so it varies with the tests run before), three times the
default model's (BENCHMARKS.md, "GGUF export"). That the difference is q8_0's rounding alone is tested exactly."""


def export(root: Path, quant: str) -> Path:
    run = RunDir(root)
    return export_gguf(run.config(), run, quant)


def from_gguf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def from_folder(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def texts(tokenizer) -> list[str]:
    """The prompts, and a conversation and a generation prompt rendered with the run's chat template."""
    return PROMPTS + [tokenizer.apply_chat_template(CONVERSATION, tokenize=False),
                      tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)]


def logits(model, tokenizer, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokenizer(text)["input_ids"]])).logits[0]


def metadata(path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    skipped = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")
    return {name: field.contents() for name, field in reader.fields.items()
            if not name.startswith("GGUF.") and name not in skipped}


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
@pytest.mark.parametrize("kind", ["lora_run", "full_run"])
def test_gguf_logits_match_the_merged_model(kind, quant, request):
    root = request.getfixturevalue(kind)
    path = export(root, quant)
    assert path == root / "gguf" / f"{root.name}-{quant}.gguf"
    merged, tokenizer = from_folder(RunDir(root).merged)
    loaded, _ = from_gguf(path)
    for text in texts(tokenizer):
        expected, got = logits(merged, tokenizer, text), logits(loaded, tokenizer, text)
        difference = (got - expected).abs().max().item()
        if quant == "f16":
            assert difference < F16_TOLERANCE, text
        else:
            assert difference < Q8_0_TOLERANCE * expected.abs().max().item(), text


def test_q8_0_differs_from_the_merged_model_by_q8_0_rounding_alone(lora_run):
    """The merged model with every matrix rounded through gguf's own q8_0 gives the GGUF's logits: the file holds
    exactly the quantized weights, in llama.cpp's layout (a q/k permutation error would show here too)."""
    path = export(lora_run, "q8_0")
    rounded, tokenizer = from_folder(RunDir(lora_run).merged)
    q8_0 = gguf.GGMLQuantizationType.Q8_0
    with torch.no_grad():
        for parameter in rounded.parameters():
            if parameter.ndim >= 2:
                values = gguf.quants.dequantize(gguf.quants.quantize(parameter.numpy(), q8_0), q8_0)
                parameter.copy_(torch.from_numpy(values))
    loaded, _ = from_gguf(path)
    for text in texts(tokenizer):
        assert torch.allclose(logits(loaded, tokenizer, text), logits(rounded, tokenizer, text), atol=1e-5)


def test_gguf_tokenizer_encodes_and_templates_like_the_runs(lora_run):
    path = export(lora_run, "f16")
    _, expected = from_folder(RunDir(lora_run).merged)
    _, tokenizer = from_gguf(path)
    for text in texts(expected):
        assert tokenizer(text)["input_ids"] == expected(text)["input_ids"], text
    assert tokenizer.apply_chat_template(CONVERSATION, tokenize=False) == expected.apply_chat_template(
        CONVERSATION, tokenize=False)
    assert [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id] == [
        expected.bos_token_id, expected.eos_token_id, expected.pad_token_id]


def test_metadata_says_what_llama_cpp_needs(lora_run):
    path = export(lora_run, "q8_0")
    _, tokenizer = from_folder(RunDir(lora_run).merged)
    fields = metadata(path)
    assert {key: fields[key] for key in [
        "general.architecture", "general.name", "general.file_type", "llama.vocab_size", "llama.context_length",
        "llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.rope.dimension_count", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
    ]} == {
        "general.architecture": "llama", "general.name": "lora-run", "general.file_type": 7,
        "llama.vocab_size": len(tokenizer), "llama.context_length": 512, "llama.embedding_length": 32,
        "llama.block_count": 2, "llama.feed_forward_length": 64, "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2, "llama.rope.dimension_count": 8, "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.padding_token_id": 2, "tokenizer.ggml.add_bos_token": False,
    }
    assert fields["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template

    reader = gguf.GGUFReader(path)
    types = reader.get_field("tokenizer.ggml.token_type").contents()
    assert [types[i] for i in (0, 1, 2)] == [gguf.TokenType.CONTROL] * 3  # <|endoftext|> <|im_start|> <|im_end|>
    assert set(types[3:]) == {gguf.TokenType.NORMAL}
    tensors = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    assert "output.weight" not in tensors  # tied to the embedding, as llama.cpp writes it
    assert tensors["token_embd.weight"] == tensors["blk.1.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.attn_norm.weight"] == tensors["output_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_untied_output_and_rows_q8_0_cannot_hold(merged_run, tiny_tokenizer, caplog):
    """An untied lm_head becomes output.weight; with 48-wide rows (not a multiple of q8_0's 32-value blocks) the
    matrices are written f16, said in the log, and still load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=2)).eval()
    root = merged_run(model)
    with caplog.at_level("INFO", logger="tunesmith"):
        path = export(root, "q8_0")
    tensors = {tensor.name: tensor.tensor_type for tensor in gguf.GGUFReader(path).tensors}
    assert tensors["output.weight"] == tensors["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert "kept in f16" in caplog.text and "output.weight" in caplog.text
    loaded, _ = from_gguf(path)
    for text in PROMPTS:
        expected = logits(model, tiny_tokenizer, text)
        assert (logits(loaded, tiny_tokenizer, text) - expected).abs().max().item() < F16_TOLERANCE


def test_modelfile_runs_the_gguf_with_chatml_the_trained_system_prompt_and_greedy_decoding(lora_run):
    run = RunDir(lora_run)
    config = run.config()
    system = 'Answer "ham" or "spam".\nNothing else.'
    save_config(config.model_copy(update={"data": config.data.model_copy(update={"system_prompt": system})}),
                run.config_path)
    path = export(lora_run, "q8_0")
    modelfile = (path.parent / "Modelfile").read_text()
    assert modelfile.splitlines()[0] == "FROM ./lora-run-q8_0.gguf"
    assert f'TEMPLATE """{CHATML_OLLAMA_TEMPLATE}"""\n' in modelfile
    assert f'SYSTEM """{system}"""\n' in modelfile
    assert 'PARAMETER stop "<|im_end|>"\n' in modelfile
    assert modelfile.endswith("PARAMETER temperature 0\n")


def test_modelfile_sends_the_system_turn_the_template_adds_when_the_run_has_no_system_prompt(tiny_tokenizer):
    modelfile = ollama_modelfile("run-f16.gguf", tiny_tokenizer, None)
    assert 'SYSTEM "You are a helpful assistant."\n' in modelfile  # what CHATML_TEMPLATE (conftest) writes


def test_modelfile_leaves_other_templates_to_the_gguf(tiny_tokenizer):
    tokenizer = copy.copy(tiny_tokenizer)  # the session's tokenizer keeps its template
    tokenizer.chat_template = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                               "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}")
    modelfile = ollama_modelfile("run-f16.gguf", tokenizer, "Be brief.")
    assert "TEMPLATE" not in modelfile.replace("# No TEMPLATE", "")
    assert "# No TEMPLATE: Ollama uses the chat template stored in the GGUF" in modelfile
    assert 'SYSTEM "Be brief."\n' in modelfile and "stop" not in modelfile


@pytest.mark.parametrize("text", [
    'say "hi"', '""starts with quotes', '"quoted"', "  spaced  ", 'two\nlines "quoted"', 'ends\nin quote"',
    "tab\there", 'line one """ inside\n"""line two', "<|im_end|>",
])
def test_ollama_values_read_back_unchanged(text):
    assert ollama_reads(ollama_value(text)) == text


def test_a_value_ollama_cannot_read_back_is_refused(error_of):
    assert "cannot be written into an Ollama Modelfile" in error_of(lambda: ollama_value('one"""\ntwo"'))


@pytest.mark.parametrize(("pre_tokenizer", "name"), [
    ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                            {"type": "ByteLevel", "use_regex": True}]}, "smollm"),
    ({"type": "Metaspace", "replacement": "▁"}, None),
    ({"type": "ByteLevel", "use_regex": False}, None),
])
def test_pre_tokenizer_is_named_from_the_tokenizers_split(tmp_path, pre_tokenizer, name, error_of):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"pre_tokenizer": pre_tokenizer}))
    model = ModelConfig(name=str(tmp_path))
    if name is None:
        assert "does not name for llama.cpp" in error_of(lambda: pre_tokenizer_name(model, tmp_path))
    else:
        assert pre_tokenizer_name(model, tmp_path) == name


def test_models_other_than_llama_are_refused(merged_run, tiny_tokenizer, error_of):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tiny_tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2))
    root = merged_run(model, "gpt2-run")
    message = error_of(lambda: export(root, "f16"))
    assert "converts Llama-family models" in message and "'gpt2'" in message and "--format hf" in message
    assert not (root / "gguf").exists()


def test_scaled_rope_is_refused(merged_run, tiny_tokenizer, error_of):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, max_position_embeddings=128,
        rope_scaling={"rope_type": "linear", "factor": 2.0}))
    assert "plain RoPE only" in error_of(lambda: export(merged_run(model), "f16"))


def test_every_quantization_the_cli_offers_has_a_tensor_type():
    assert set(TENSOR_TYPES) == set(get_args(GgufQuant))


def test_unknown_quantization_is_refused(lora_run, error_of):
    message = error_of(lambda: export(lora_run, "q4_0"))
    assert message == "unknown GGUF quantization 'q4_0' (use one of: f16, q8_0)"
    assert not (lora_run / "merged").exists()  # refused before any work


def test_the_merged_export_is_made_first_and_a_failed_write_keeps_the_previous_file(full_run, monkeypatch):
    path = export(full_run, "f16")
    assert (RunDir(full_run).merged / "config.json").is_file()
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", fail)
    with pytest.raises(RuntimeError, match="killed halfway"):
        export(full_run, "f16")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["Modelfile", path.name]  # no staging file left


def test_cli_exports_gguf_and_prints_its_path(lora_run, capsys):
    assert main(["export", str(lora_run), "--format", "gguf", "--quant", "q8_0"]) == 0
    path = lora_run / "gguf" / "lora-run-q8_0.gguf"
    out = capsys.readouterr().out
    assert f"gguf: {path}" in out and f"modelfile: {path.parent / 'Modelfile'}" in out
    assert path.is_file()


@pytest.mark.slow
def test_real_model_q8_0_agrees_with_its_merged_export(default_model_dir, tmp_path):
    """SmolLM2-135M-Instruct as a full run's merged/ export: its q8_0 GGUF encodes alike and picks the same next
    token, with logits within the q8_0 tolerance. About 30 s on 2 idle CPU cores (55 s when others share them),
    most of it transformers reading and dequantizing the file."""
    from tunesmith.config import validate_config

    run = RunDir(tmp_path / "smollm2-run")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "train.jsonl"}, "method": "full"}),
                run.config_path)
    shutil.copytree(default_model_dir, run.merged)  # what export_run writes for an untrained full run
    path = export_gguf(run.config(), run, "q8_0")
    assert metadata(path)["tokenizer.ggml.pre"] == "smollm"  # the name in the base's own GGUF
    merged, tokenizer = from_folder(run.merged)
    loaded, gguf_tokenizer = from_gguf(path)
    for text in [texts(tokenizer)[i] for i in (1, 3, 4)]:  # digits, a conversation, a generation prompt
        assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
        expected, got = logits(merged, tokenizer, text), logits(loaded, tokenizer, text)
        assert got[-1].argmax() == expected[-1].argmax(), text
        assert (got - expected).abs().max().item() < Q8_0_TOLERANCE * expected.abs().max().item(), text


def test_a_merged_export_older_than_the_best_weights_is_exported_again(lora_run):
    import os

    from tunesmith.export import export_gguf, export_run
    from tunesmith.run_dir import RunDir

    run = RunDir(lora_run)
    export_run(run.config(), run)
    weights = run.merged / "model.safetensors"
    old = weights.stat().st_mtime - 100
    os.utime(run.merged / "config.json", (old, old))  # as if training ran again after this export
    os.utime(weights, (old, old))
    export_gguf(run.config(), run, "f16")
    assert weights.stat().st_mtime > old
