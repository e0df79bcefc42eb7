"""Drawing a trial's settings: a seed of its own for every draw, never a setting any trial had, a clear end when the
space is used up, and no listing of a wide integer range (no training: trials are asked and told by hand)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from optuna.trial import TrialState

from tunesmith.config import validate_config
from tunesmith.config.search_space import parse_space
from tunesmith.experiments.study import SpaceUsedUp, draw_untried, open_study, setting_key, suggest


def space(params: dict, **sweep):
    config = validate_config({"data": {"train": "train.jsonl"}, "sweep": {"params": params, **sweep}})
    return config.sweep, parse_space(config)


def start(study, sweep, params, state=None, value=0.5):
    """What a worker does: draw, queue, ask, and the trial takes its settings; then (``state``) end the trial."""
    study.enqueue_trial(draw_untried(study, sweep, params), skip_if_exists=False)
    trial = study.ask()
    for param in params:
        suggest(trial, param)
    if state is not None:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    return trial


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_two_workers_and_a_resume_each_draw_new_settings(tmp_path, sampler):
    sweep, params = space({"train.learning_rate": {"log_uniform": [1e-5, 1e-2]}}, sampler=sampler)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    first, second = (open_study(url, "s", sweep, "minimize") for _ in range(2))  # two worker processes
    a = start(first, sweep, params)
    b = start(second, sweep, params)
    first.tell(a, 0.3)
    second.tell(b, 0.4)
    resumed = open_study(url, "s", sweep, "minimize")  # a resume opens the study afresh, with the same sweep.seed
    c = start(resumed, sweep, params, TrialState.COMPLETE)
    drawn = [trial.params["train.learning_rate"] for trial in resumed.get_trials()]
    assert [a.number, b.number, c.number] == [0, 1, 2] and len(set(drawn)) == 3


def test_a_tried_setting_is_never_drawn_again_and_a_used_up_space_says_so(tmp_path):
    sweep, params = space({"lora.r": [2, 4, 8]}, sampler="tpe")
    study = open_study(f"sqlite:///{tmp_path / 'sweep.db'}", "s", sweep, "minimize")
    start(study, sweep, params, TrialState.COMPLETE)
    start(study, sweep, params, TrialState.FAIL)  # a failed (or dead) trial's settings count as tried
    start(study, sweep, params)  # and a running one's
    assert sorted(trial.params["lora.r"] for trial in study.get_trials()) == [2, 4, 8]
    with pytest.raises(SpaceUsedUp) as used_up:
        draw_untried(study, sweep, params)
    assert str(used_up.value) == "all 3 settings of the search space were tried, 1 of them by trials that failed"


def test_the_grid_is_walked_once(tmp_path):
    sweep, params = space({"lora.r": [2, 4], "train.max_steps": {"int": [1, 3]}}, sampler="grid")
    study = open_study(f"sqlite:///{tmp_path / 'sweep.db'}", "s", sweep, "minimize")
    for _ in range(6):
        start(study, sweep, params, TrialState.COMPLETE)
    assert len({setting_key(params, trial.params) for trial in study.get_trials()}) == 6
    with pytest.raises(SpaceUsedUp, match="^all 6 settings of the search space were tried$"):
        draw_untried(study, sweep, params)


def test_a_wide_integer_range_is_drawn_without_listing_it(tmp_path):
    sweep, params = space({"train.seed": {"int": [0, 10**9]}}, sampler="random")
    study = open_study(f"sqlite:///{tmp_path / 'sweep.db'}", "s", sweep, "minimize")
    tracemalloc.start()
    began = time.monotonic()
    try:
        for _ in range(3):
            start(study, sweep, params, TrialState.COMPLETE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - began < 10 and peak < 50 * 2**20  # listing 10**9 values would take gigabytes
    assert len({trial.params["train.seed"] for trial in study.get_trials()}) == 3
