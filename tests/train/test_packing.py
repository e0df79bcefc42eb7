import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config import validate_config
from tunesmith.config.schema import LoraConfig
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.models import add_lora
from tunesmith.predict.loss import supervised_loss_sum
from tunesmith.predict.model_inputs import collate, collate_packed, flatten_packed
from tunesmith.run_dir import RunDir
from tunesmith.train import train
from tunesmith.train.batching import count_supervised
from tunesmith.train.packing import best_fit_decreasing, epoch_packed_batches


def test_best_fit_decreasing_by_hand():
    # 5 opens pack 0 (room 3); 4 does not fit: pack 1 (room 4); the first 3 fits pack 0 exactly; the second
    # 3 goes to pack 1 (room 1); 2 fits nowhere: pack 2; 1 goes to the fullest pack it fits, pack 1.
    assert best_fit_decreasing([5, 4, 3, 3, 2, 1], capacity=8) == [[0, 2], [1, 3, 5], [4]]


def test_best_fit_decreasing_rejects_a_row_longer_than_a_pack():
    with pytest.raises(ValueError, match="row 1 has 9 tokens"):
        best_fit_decreasing([3, 9], capacity=8)


def test_epoch_packed_batches_deterministic_bounded_and_complete():
    lengths = [17, 3, 40, 25, 8, 33, 12, 5, 29, 21, 9, 38, 2, 14, 30]
    plan = epoch_packed_batches(lengths, max_length=48, batch_size=2, seed=7, epoch=0)
    assert plan == epoch_packed_batches(lengths, max_length=48, batch_size=2, seed=7, epoch=0)
    packs = [pack for batch in plan for pack in batch]
    assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in pack) <= 48 for pack in packs)
    assert all(len(batch) == 2 for batch in plan[:-1]) and 1 <= len(plan[-1]) <= 2
    # A pack is opened only for a row that fits in no earlier pack, so no two packs could have been one.
    loads = [sum(lengths[i] for i in pack) for pack in packs]
    assert all(loads[i] + loads[j] > 48 for i in range(len(loads)) for j in range(i))
    assert plan != epoch_packed_batches(lengths, max_length=48, batch_size=2, seed=7, epoch=1)


def lora_model(model):
    model = add_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would leave every A gradient zero and untested
            torch.nn.init.normal_(param, std=0.1)
    return model


@pytest.mark.parametrize(("attention", "flatten"), [("sdpa", False), ("eager", False), ("sdpa", True)])
@pytest.mark.parametrize("loss_on", ["assistant", "all"])
@pytest.mark.parametrize("use_lora", [False, True])
def test_packed_loss_and_gradients_equal_rows_run_alone(tiny_model, tiny_tokenizer, loss_on, use_lora, spam_examples,
                                                        attention, flatten):
    """Rows packed (each attention keeps them apart by their positions alone), and the same packs flattened into
    one padding-free sequence, as FlashAttention's varlen kernel gets them (here through sdpa's mask)."""
    tiny_model.set_attn_implementation(attention)
    model = lora_model(tiny_model) if use_lora else tiny_model
    params = [p for p in model.parameters() if p.requires_grad]
    rows, _ = tokenize_examples(spam_examples(5), tiny_tokenizer, max_length=128, loss_on=loss_on)
    assert len({len(row.input_ids) for row in rows}) > 1

    alone = [supervised_loss_sum(model, collate([row], tiny_tokenizer.pad_token_id)) for row in rows]
    count = sum(n for _, n in alone)
    reference = sum(loss for loss, _ in alone) / count
    reference_grads = torch.autograd.grad(reference, params)

    # Two packed rows of different lengths, so the shorter one ends in padding.
    batch = collate_packed([[rows[0], rows[1], rows[2]], [rows[3], rows[4]]], tiny_tokenizer.pad_token_id)
    assert int((batch["attention_mask"] == 0).sum()) > 0
    if flatten:
        batch = flatten_packed(batch)
    loss_sum, packed_count = supervised_loss_sum(model, batch)
    assert packed_count == count == count_supervised(batch)
    packed = loss_sum / packed_count
    grads = torch.autograd.grad(packed, params)

    assert abs(float(packed.detach()) - float(reference.detach())) < 1e-5
    for got, want in zip(grads, reference_grads):
        assert float(want.abs().max()) > 0
        assert torch.allclose(got, want, atol=1e-5)


def packing_config(model_dir, **train_settings):
    settings = {"batch_size": 2, "learning_rate": 1e-2, "eval_every": 100, "save_every": 3, "warmup_ratio": 0.0,
                "keep_checkpoints": 5, "packing": True}
    settings.update(train_settings)
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 256},
                            "lora": {"r": 4, "alpha": 8}, "train": settings})


def test_packed_training_writes_run_files_and_resumes_exactly(tiny_model_dir, tiny_tokenizer, tmp_path, tiny_splits):
    config = packing_config(tiny_model_dir, max_steps=6)
    rows, _ = tokenize_examples(tiny_splits().train, tiny_tokenizer, max_length=256)
    # 16 rows of 48-81 tokens fill 5 packs: 3 batches of at most 2 packs per epoch, so 6 steps are 2 epochs.
    assert len(best_fit_decreasing([len(row.input_ids) for row in rows], 256)) == 5

    full = RunDir(tmp_path / "full")
    summary = train(config, full, RunInputs(config, tiny_splits()))
    assert summary["steps"] == 6 and summary["train_rows"] == 16
    assert summary["train_tokens"] == 2 * sum(len(row.input_ids) for row in rows)  # real tokens, no padding
    lines = [json.loads(line) for line in full.metrics.read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(line["loss"]) for line in lines if "loss" in line)
    assert (full.best / "adapter_model.safetensors").is_file()
    reference = load_file(full.checkpoints / "step-000006" / "weights" / "adapter_model.safetensors")

    resumed = RunDir(tmp_path / "resumed")
    shutil.copytree(full.root, resumed.root)
    shutil.rmtree(resumed.checkpoints / "step-000006")  # as if killed after the step-3 checkpoint
    shutil.rmtree(resumed.best)
    assert train(config, resumed, RunInputs(config, tiny_splits()), resume=True)["steps"] == 6
    got = load_file(resumed.checkpoints / "step-000006" / "weights" / "adapter_model.safetensors")
    for key in reference:
        assert torch.allclose(got[key], reference[key], atol=1e-6), key
    steps = [json.loads(line)["step"] for line in resumed.metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 6]


def test_flash_attention_gets_the_packed_batch_flat_with_its_row_boundaries(tiny_model, tiny_tokenizer, spam_examples,
                                                                          monkeypatch):
    """Without a GPU: transformers' FlashAttention entry point replaced by a plain-torch variable-length attention
    that needs the row boundaries `varlen_attention_inputs` passes (their names are transformers'), so the
    flattened batch's path through the decoder, and its loss, are checked here; the kernel itself is checked by
    the gpu test below."""
    from transformers.modeling_utils import AttentionInterface

    calls = []

    def varlen_attention(module, query, key, value, attention_mask, scaling=None, cu_seq_lens_q=None,
                         max_length_q=None, **kwargs):
        assert attention_mask is None and query.shape[0] == 1 and isinstance(max_length_q, int)
        calls.append(cu_seq_lens_q.tolist())
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
        bounds = cu_seq_lens_q.tolist()
        rows = [torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], is_causal=True, scale=scaling)
            for start, end in zip(bounds, bounds[1:])]
        return torch.cat(rows, dim=2).transpose(1, 2), None

    monkeypatch.setitem(AttentionInterface._global_mapping, "flash_attention_2", varlen_attention)
    rows, _ = tokenize_examples(spam_examples(5), tiny_tokenizer, max_length=128)
    alone = [supervised_loss_sum(tiny_model, collate([row], tiny_tokenizer.pad_token_id)) for row in rows]
    tiny_model.config._attn_implementation = "flash_attention_2"
    batch = collate_packed([[rows[0], rows[1], rows[2]], [rows[3], rows[4]]], tiny_tokenizer.pad_token_id)
    loss_sum, count = supervised_loss_sum(tiny_model, batch)
    lengths = [len(row.input_ids) for row in rows]
    assert calls and calls[0] == [sum(lengths[:i]) for i in range(6)]  # one sequence, no padding, five rows
    assert count == sum(n for _, n in alone)
    total = float(loss_sum.detach())
    assert abs(total - float(sum(loss.detach() for loss, _ in alone))) <= 1e-5 * total


@pytest.mark.gpu
def test_flash_attention_packed_loss_equals_rows_run_alone(cuda_with_flash_attn, tiny_model_dir, tiny_tokenizer,
                                                           spam_examples):
    """With FlashAttention the packed batch runs flattened, without padding or any mask (varlen kernel): the loss
    and gradients are those of the rows run alone, to bf16 rounding."""
    from tunesmith.config import ModelConfig
    from tunesmith.models import load_model_folder

    config = ModelConfig(name=str(tiny_model_dir), dtype="bfloat16", attention="flash_attention_2")
    device = cuda_with_flash_attn
    model = load_model_folder(tiny_model_dir, config, device).train()
    assert model.config._attn_implementation == "flash_attention_2"
    params = [p for p in model.parameters() if p.requires_grad]
    rows, _ = tokenize_examples(spam_examples(5), tiny_tokenizer, max_length=128)

    def on_gpu(batch):
        return {key: value.to(device) for key, value in batch.items()}

    alone = [supervised_loss_sum(model, on_gpu(collate([row], tiny_tokenizer.pad_token_id))) for row in rows]
    reference = sum(loss for loss, _ in alone) / sum(n for _, n in alone)
    reference_grads = torch.autograd.grad(reference, params)
    batch = on_gpu(collate_packed([[rows[0], rows[1], rows[2]], [rows[3], rows[4]]], tiny_tokenizer.pad_token_id))
    loss_sum, count = supervised_loss_sum(model, batch)
    grads = torch.autograd.grad(loss_sum / count, params)
    assert count == sum(n for _, n in alone)
    assert abs(float(loss_sum) / count - float(reference)) <= 1e-2 * float(reference)
    for got, want in zip(grads, reference_grads):
        assert float((got.float() - want.float()).norm()) <= 5e-2 * float(want.float().norm()) + 1e-6
