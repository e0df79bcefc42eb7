"""`align_best`: `checkpoints/best` is put back on the timeline a resume continues, or removed (and the state
forgets it) when no checkpoint holds its weights; its record always names the step of the weights beside it."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

from tunesmith.train.best import BEST_RECORD, align_best, best_record, mark_best, weights_readable
from tunesmith.train.checkpoint import Checkpoint, publish_best
from tunesmith.train.state import TrainState


def adapter_model(tiny_model, seed: int):
    torch.manual_seed(seed)
    return get_peft_model(tiny_model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))


def resumed(checkpoints, step: int, best_step: int | None) -> Checkpoint:
    state = TrainState(step=step, best_step=best_step, best_val_loss=None if best_step is None else 1.5,
                       evals_without_gain=1)
    return Checkpoint(checkpoints / f"step-{step:06d}", state, [], True, {}, {}, {})


def tensors(folder):
    return load_file(folder / "adapter_model.safetensors")


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(a[name].equal(b[name]) for name in a)


def test_a_best_of_the_same_timeline_is_kept(tmp_path, tiny_model):
    model = adapter_model(tiny_model, 0)
    publish_best(tmp_path, model)
    mark_best(tmp_path, 2, 1.5)
    before = (tmp_path / "best" / "adapter_model.safetensors").read_bytes()
    align_best(tmp_path, resumed(tmp_path, 4, 2), model)
    assert (tmp_path / "best" / "adapter_model.safetensors").read_bytes() == before
    assert best_record(tmp_path) == {"step": 2, "val_loss": 1.5}


def test_best_of_abandoned_steps_is_rewritten_from_the_resumed_checkpoint(tmp_path, tiny_model):
    abandoned = adapter_model(tiny_model, 0)
    publish_best(tmp_path, abandoned)
    mark_best(tmp_path, 6, 1.0)
    resumed_model = adapter_model(tiny_model, 1)  # the checkpoint's weights (step 4, its own best)
    checkpoint = resumed(tmp_path, 4, 4)
    align_best(tmp_path, checkpoint, resumed_model)
    assert best_record(tmp_path) == {"step": 4, "val_loss": 1.5} and checkpoint.state.best_step == 4
    publish_best(tmp_path / "expected", resumed_model)
    assert same(tensors(tmp_path / "best"), tensors(tmp_path / "expected" / "best"))


def test_best_is_copied_from_the_checkpoint_of_its_step(tmp_path, tiny_model):
    publish_best(tmp_path, adapter_model(tiny_model, 0))  # no record: a best written before records existed
    adapter_model(tiny_model, 1).save_pretrained(tmp_path / "step-000002" / "weights")
    align_best(tmp_path, resumed(tmp_path, 4, 2), adapter_model(tiny_model, 2))
    assert best_record(tmp_path) == {"step": 2, "val_loss": 1.5}
    assert same(tensors(tmp_path / "best"), tensors(tmp_path / "step-000002" / "weights"))


def test_a_damaged_best_is_rewritten(tmp_path, tiny_model):
    model = adapter_model(tiny_model, 0)
    publish_best(tmp_path, model)
    mark_best(tmp_path, 4, 1.5)
    (tmp_path / "best" / "adapter_model.safetensors").write_bytes(b"")
    assert not weights_readable(tmp_path / "best")
    align_best(tmp_path, resumed(tmp_path, 4, 4), model)
    assert weights_readable(tmp_path / "best") and best_record(tmp_path)["step"] == 4


def test_best_whose_weights_no_checkpoint_holds_is_removed_and_forgotten(tmp_path, tiny_model):
    publish_best(tmp_path, adapter_model(tiny_model, 0))
    mark_best(tmp_path, 6, 1.0)
    checkpoint = resumed(tmp_path, 4, 2)  # step 2's checkpoint was pruned
    align_best(tmp_path, checkpoint, adapter_model(tiny_model, 1))
    assert not (tmp_path / "best").exists()
    state = checkpoint.state
    assert (state.best_step, state.best_val_loss, state.best_val_metrics, state.evals_without_gain) == (
        None, None, None, 0)


def test_best_before_any_best_of_the_timeline_is_removed(tmp_path, tiny_model):
    publish_best(tmp_path, adapter_model(tiny_model, 0))
    (tmp_path / "best" / BEST_RECORD).write_text('{"step": 3, "val_loss": 1.0}')
    align_best(tmp_path, resumed(tmp_path, 2, None), adapter_model(tiny_model, 1))
    assert not (tmp_path / "best").exists()
