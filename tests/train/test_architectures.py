"""Model families and tokenizer quirks a user's model may have: Llama, Qwen2, Mistral and Gemma (1, 2 and 3) built
tiny from their configs train with LoRA and fully, with the training loss equal to each model's own; a tokenizer
without a chat template, one without a pad token, and tied embeddings."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import tunesmith.train.recipe as recipe
from tunesmith.config import save_config, validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.tokenize import IGNORE_INDEX, tokenize_examples
from tunesmith.errors import ConfigError
from tunesmith.models import load_tokenizer, load_tuned_model
from tunesmith.predict.loss import supervised_loss_sum
from tunesmith.predict.model_inputs import collate
from tunesmith.run_dir import RunDir
from tunesmith.train import train
from tunesmith.train.batching import count_supervised
from tunesmith.train.checkpoint import read_checkpoint

TINY_SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 512}
ARCHITECTURES = {
    "llama": ("LlamaConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {}),
    "gemma": ("GemmaConfig", {"head_dim": 8}),
    # Gemma 2 squashes its logits, cap * tanh(logits / cap): its cap of 30 would not bite on a random model's small
    # logits, so the tiny one gets a cap that does.
    "gemma2": ("Gemma2Config", {"head_dim": 8, "final_logit_softcapping": 0.5}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 8}),
}
"""Family → (transformers config class, settings beside `TINY_SIZES`): 2 layers, hidden 32, ~1 s to train."""


@pytest.fixture()
def model_dir(tmp_path, tiny_tokenizer):
    """``model_dir(family="llama", tokenizer=None, **config)``: a tiny random model of ``family`` saved with the tiny
    tokenizer (or ``tokenizer``) as a model folder."""
    import transformers
    from transformers import AutoModelForCausalLM

    made = []

    def make(family: str = "llama", tokenizer=None, **overrides):
        tokenizer = tokenizer or tiny_tokenizer
        config_class, extra = ARCHITECTURES[family]
        config = getattr(transformers, config_class)(
            vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, **{**TINY_SIZES, **extra, **overrides})
        torch.manual_seed(0)
        folder = tmp_path / f"{family}-{len(made)}"
        made.append(folder)
        AutoModelForCausalLM.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return make


def run_config(folder, method: str = "lora", chat_template: str = "model", **train_settings):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "eval_every": 100, "save_every": 100,
                "group_by_length": False, "warmup_ratio": 0.0, **train_settings}
    return validate_config({"model": {"name": str(folder), "chat_template": chat_template},
                            "data": {"train": "unused.jsonl", "max_length": 160}, "method": method,
                            "lora": {"r": 4, "alpha": 8}, "train": settings})


def trained_run(root, config, splits) -> RunDir:
    """A run folder as `tunesmith train` leaves it (its config saved), so `load_tuned_model` reads it."""
    run = RunDir(root)
    run.root.mkdir()
    save_config(config, run.config_path)
    train(config, run, RunInputs(config, splits))
    return run


def step_losses(run: RunDir) -> list[float]:
    return [line["loss"] for line in map(json.loads, run.metrics.read_text().splitlines()) if "loss" in line]


@pytest.fixture()
def trained_models(monkeypatch) -> list:
    """The in-memory models of the runs this test trains, as training left them (`set_up` is wrapped)."""
    models = []
    real_set_up = recipe.set_up

    def set_up(*args, **kwargs):
        training, checkpoint = real_set_up(*args, **kwargs)
        models.append(training)
        return training, checkpoint

    monkeypatch.setattr(recipe, "set_up", set_up)
    return models


def masked_batch(tokenizer, spam_examples):
    rows, _ = tokenize_examples(spam_examples(3), tokenizer, 160)
    return collate(rows, tokenizer.pad_token_id)


@pytest.mark.parametrize("family", ARCHITECTURES)
def test_the_training_loss_is_the_models_own_loss(family, model_dir, tiny_tokenizer, spam_examples):
    """tunesmith's loss skips the model's forward (it applies the head to supervised positions only): it must still
    be the loss the model defines, softcapped logits (Gemma 2) included, with and without gradients."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir(family))
    batch = masked_batch(tiny_tokenizer, spam_examples)
    reference = model(**batch).loss * count_supervised(batch)  # the mean over supervised tokens
    loss_sum, count = supervised_loss_sum(model, batch)
    assert count == count_supervised(batch)
    assert torch.allclose(loss_sum, reference, rtol=1e-5), (float(loss_sum), float(reference))
    with torch.no_grad():
        assert torch.allclose(supervised_loss_sum(model, batch)[0], reference, rtol=1e-5)


@pytest.mark.parametrize("family", ARCHITECTURES)
def test_every_family_trains_lora_steps_and_a_full_step(family, model_dir, tmp_path, tiny_splits):
    folder = model_dir(family)
    lora = RunDir(tmp_path / "lora")
    cfg = run_config(folder, "lora", max_steps=4)
    train(cfg, lora, RunInputs(cfg, tiny_splits(n_val=0)))
    losses = step_losses(lora)
    assert len(losses) == 4 and losses[-1] < losses[0]
    adapter = load_file(lora.best / "adapter_model.safetensors")
    assert all(float(tensor.abs().max()) > 0 for key, tensor in adapter.items() if "lora_B" in key)

    full = RunDir(tmp_path / "full")
    cfg = run_config(folder, "full", max_steps=1, learning_rate=1e-3)
    train(cfg, full, RunInputs(cfg, tiny_splits(n_val=0)))
    base, tuned = load_file(folder / "model.safetensors"), load_file(full.best / "model.safetensors")
    assert tuned.keys() == base.keys() and all(not torch.equal(base[key], tuned[key]) for key in base)


# ---- tokenizer quirks --------------------------------------------------------------------------------------------


def test_a_tokenizer_without_chat_template_needs_a_built_in(model_dir, tiny_tokenizer, tmp_path, tiny_splits):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(model_dir())  # a copy: the session's tokenizer stays as it is
    plain.chat_template = None
    folder = model_dir(tokenizer=plain)
    assert not (folder / "chat_template.jinja").exists()
    with pytest.raises(ConfigError, match="model.chat_template: is `model`, but the model's tokenizer has no chat "
                                          "template .*set model.chat_template to a built-in"):
        load_tokenizer(run_config(folder).model)

    run = RunDir(tmp_path / "run")
    cfg = run_config(folder, chat_template="chatml", max_steps=2)
    train(cfg, run, RunInputs(cfg, tiny_splits(n_val=0)))
    assert len(step_losses(run)) == 2


def test_without_a_pad_token_padding_is_masked_and_the_eos_is_learned(model_dir, tiny_tokenizer, tmp_path,
                                                                       tiny_splits, spam_examples):
    """pad = eos when a tokenizer has no pad token. Labels come from the rows, not from the pad id: padding carries
    no loss, and the EOS that ends every answer keeps its label, so the model learns to stop."""
    from transformers import AutoTokenizer

    unpadded = AutoTokenizer.from_pretrained(model_dir())
    unpadded.pad_token = None
    folder = model_dir(tokenizer=unpadded)
    tokenizer = load_tokenizer(run_config(folder).model)
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos

    rows, _ = tokenize_examples(spam_examples(6), tokenizer, 160)
    assert all(row.labels[row.input_ids.index(eos, len(row.input_ids) - 3)] == eos for row in rows)
    batch = collate(rows, tokenizer.pad_token_id)
    padding = batch["attention_mask"] == 0
    assert padding.any() and (batch["input_ids"][padding] == eos).all()
    assert (batch["labels"][padding] == IGNORE_INDEX).all()
    assert count_supervised(batch) == sum(row.num_supervised for row in rows)

    def eos_log_probability(model) -> float:
        """Mean log-probability of the EOS where each answer ends."""
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ends = (batch["labels"][:, 1:] == eos).nonzero()
        return float(torch.log_softmax(logits[ends[:, 0], ends[:, 1]], dim=-1)[:, eos].mean())

    from transformers import AutoModelForCausalLM

    before = eos_log_probability(AutoModelForCausalLM.from_pretrained(folder))
    run = trained_run(tmp_path / "run", run_config(folder, "full", max_steps=6), tiny_splits(n_val=0))
    after = eos_log_probability(load_tuned_model(run.root, torch.device("cpu"))[0])
    assert after > before + 1.0, (before, after)


@pytest.mark.parametrize("tied", [True, False])
def test_full_fine_tuning_of_tied_embeddings_reloads_as_trained(tied, model_dir, tmp_path, tiny_splits,
                                                                trained_models):
    """A tied head is stored once (the checkpoint loader reads it with strict=False): the reloaded model, from the
    best folder and from a resumable checkpoint, must equal the trained one, with head and embeddings still one."""
    from transformers import AutoModelForCausalLM

    folder = model_dir(tie_word_embeddings=tied)
    config = run_config(folder, "full", max_steps=2, save_every=2)
    run = trained_run(tmp_path / "run", config, tiny_splits(n_val=0))
    trained = trained_models[0].unwrapped.state_dict()

    stored = load_file(run.best / "model.safetensors")
    assert ("lm_head.weight" in stored) == (not tied)
    reloaded, _ = load_tuned_model(run.root, torch.device("cpu"))
    assert (reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()) == tied
    assert reloaded.state_dict().keys() == trained.keys()
    assert all(torch.equal(reloaded.state_dict()[key], trained[key]) for key in trained)

    resumed = AutoModelForCausalLM.from_pretrained(folder)
    read_checkpoint(run.checkpoints / "step-000002").apply_weights(resumed)
    assert all(torch.equal(resumed.state_dict()[key], trained[key]) for key in trained)
