"""A folder of runs as the UI sees it, built once per session: finished runs (metrics, eval.json, data summary,
report, predictions, a random LoRA adapter on a tiny chatty Llama, a blind review), a run that is training now
(its lock held by this process), a stopped run, a full fine-tune, and a sweep of three trials with its study; and
the UI served on a free loopback port in a thread."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path
from tunesmith.run_dir import RunDir

XSS = "<script>window.__xss=1</script><b>bold</b>"
REVIEWERS = ("ann", "bob")
REVIEW_PROMPTS = 7


def write_run(root: Path, model_dir: Path, learning_rate: float = 2e-4, lora_r: int = 4,
              method: str = "lora") -> RunDir:
    root.mkdir(parents=True)
    run = RunDir(root)
    config = validate_config({
        "model": {"name": str(model_dir)}, "method": method,
        "lora": {"r": lora_r, "alpha": 2.0 * lora_r, "target_modules": ["q_proj", "v_proj"]},
        "data": {"train": "train.jsonl", "system_prompt": "You sort messages."},
        "train": {"learning_rate": learning_rate, "max_steps": 10},
    })
    save_config(config, run.config_path)
    return run


def write_metrics(run: RunDir, steps: int, start_loss: float) -> None:
    lines = [{"step": step, "loss": start_loss / step, "lr": 1e-4} for step in range(1, steps + 1)]
    lines += [{"step": step, "val_loss": start_loss / step + 0.1, "val_accuracy": 0.5 + step / 100}
              for step in range(5, steps + 1, 5)]
    lines.sort(key=lambda line: line["step"])
    run.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_results(run: RunDir, accuracy: float) -> None:
    base = {"accuracy": 0.5, "f1": 0.4, "loss": 2.0}
    tuned = {"accuracy": accuracy, "f1": accuracy - 0.05, "loss": 1.2}
    run.eval_json.write_text(json.dumps({
        "task": "classification", "labels": ["ham", "spam"], "num_examples": 8, "base": base, "tuned": tuned,
        "delta": {key: tuned[key] - base[key] for key in base}, "baselines": {}, "unleaked": None}))
    run.data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", "spam"],
                                            "rows": {"train": 48, "validation": 6, "test": 8}}))
    run.report_html.write_text("<html><body><h1>report of the run</h1></body></html>")
    run.predictions.write_text(json.dumps({"location": "test.jsonl:1", "prediction": "spam"}) + "\n")


def write_adapter(run: RunDir, model_dir: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    adapter = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, adapter).save_pretrained(run.best)


def review_plan() -> ReviewPlan:
    """Tuned vs base on 7 prompts; each reviewer's sides drawn at random (seeded). The tuned answer of prompt 0
    is markup that must show as text; every other answer names its model and prompt, so a test can tell from
    the text alone which model it sees."""
    prompts = [ReviewPrompt(location=f"test.jsonl:{n + 1}", system="You sort messages.", prompt=f"Is message {n} spam?",
                            reference="spam", label="spam",
                            answers={"tuned": XSS if n == 0 else f"tuned answer {n}", "base": f"base answer {n}"})
               for n in range(REVIEW_PROMPTS)]
    items = [(n, "tuned", "base") for n in range(REVIEW_PROMPTS)]
    sides = random.Random(13)
    queues = {reviewer: [(n, *(("tuned", "base") if sides.random() < 0.5 else ("base", "tuned")))
                         for n in range(REVIEW_PROMPTS)] for reviewer in REVIEWERS}
    return ReviewPlan(models=[("tuned", "tuned", None), ("base", "base", None)], prompts=prompts, items=items,
                      queues=queues, rubric=["correct", "fluent"], show_reference=False, settings={"seed": 13})


@pytest.fixture(scope="session")
def xss_answer() -> str:
    """The tuned model's answer to the review's first prompt: markup that must show as text and never run."""
    return XSS


@pytest.fixture(scope="session")
def chatty_dir(tmp_path_factory, tiny_tokenizer, build_chatty_model) -> Path:
    """The tiny Llama with large random weights, saved: its greedy answers are words, not one token repeated."""
    folder = tmp_path_factory.mktemp("ui-chatty-llama")
    build_chatty_model(len(tiny_tokenizer)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory, chatty_dir, save_nudged_model) -> Path:
    """The fixture runs; ``spam-live`` is locked by this process for the whole session (it reads as running)."""
    root = tmp_path_factory.mktemp("ui-runs")
    done = write_run(root / "spam-done", chatty_dir)
    write_metrics(done, 20, 3.0)
    write_results(done, 0.875)
    write_adapter(done, chatty_dir, seed=1)
    path = database_path(done.root)
    path.parent.mkdir()
    create_database(path, review_plan())
    with ReviewStore.open(done.root) as store:  # a judge model's queue: not a reviewer of the pages
        store.add_reviewer("judge:stub", "judge", [(item.item_id, "tuned", "base") for item in store.items()])
    other = write_run(root / "spam-lr-high", chatty_dir, learning_rate=1e-3, lora_r=8)
    write_metrics(other, 20, 4.0)
    write_results(other, 0.75)
    write_metrics(write_run(root / "spam-stopped", chatty_dir), 3, 3.0)
    save_nudged_model(chatty_dir, write_run(root / "spam-full", chatty_dir, method="full").best, seed=5)
    live = write_run(root / "spam-live", chatty_dir)
    write_metrics(live, 6, 3.5)
    write_sweep(root / "sms-sweep-1", chatty_dir)
    (root / "not-a-run").mkdir()
    return root


def write_sweep(folder: Path, model_dir: Path) -> None:
    """A sweep of three trials whose study says: finished, pruned, failed."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from tunesmith.sweep_folder import sqlite_url

    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"storage": sqlite_url(folder), "study": "sms"}))
    study = optuna.create_study(storage=sqlite_url(folder), study_name="sms")
    for number, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]):
        trial = write_run(folder / "trials" / f"trial-{number:04d}", model_dir, learning_rate=1e-4 * (number + 1))
        write_metrics(trial, 8, 3.0 + number)
        study.add_trial(create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                                     user_attrs={"run_dir": str(trial.root)}))


@pytest.fixture(scope="session")
def live_lock(runs_dir):
    """Hold ``spam-live``'s lock, as a training process does."""
    with RunDir(runs_dir / "spam-live").lock():
        yield runs_dir / "spam-live"


@pytest.fixture(scope="session")
def serve_ui(serving):
    """``serve_ui(settings) -> base URL``: the UI on a free loopback port in a thread (stopped at the end)."""
    from tunesmith.ui import create_ui_app

    with contextlib.ExitStack() as servers:
        # Any answer says it is up: with a token set, even the static files answer 401 without it.
        yield lambda settings: servers.enter_context(
            serving(create_ui_app(settings), "/static/ui.js", ready_status=None))


@pytest.fixture(scope="module")
def started_browsers() -> list:
    """The browsers `start_browser` started in this module."""
    return []


def _csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


@pytest.fixture(scope="session")
def csp_violations():
    """``csp_violations(driver) -> [console line]``: where the browser refused, since the last call, something the
    page's Content-Security-Policy does not allow (an inline script or style, a frame, a request elsewhere)."""
    return _csp_violations


@pytest.fixture(autouse=True)
def no_csp_violations(started_browsers):
    """After each test, no page its browsers showed broke the UI's Content-Security-Policy: each page still works
    under it (an inline script would have been refused, and said so in the console)."""
    yield
    for driver in started_browsers:
        assert _csp_violations(driver) == []


@pytest.fixture(scope="module")
def start_browser(started_browsers, launch_chromium):
    """``start_browser() -> driver``: a headless Chromium (`launch_chromium`), quit at the end of the module. Each is
    a browser session of its own (cookies, localStorage), with its console kept (`csp_violations`)."""
    started = started_browsers

    def start():
        started.append(launch_chromium(1280, 860, console=True))
        return started[-1]

    yield start
    for driver in started:
        driver.quit()


@pytest.fixture(scope="module")
def browser(start_browser):
    """One headless Chromium for the module's tests."""
    return start_browser()


@pytest.fixture(scope="session")
def at_review_item():
    """``at_review_item(position) -> condition``: the review page showing item ``position``, its script listening
    (keys sent before it listens are lost). Asked in one script, so a page that reloads in between cannot answer
    with half the old one."""

    def condition(position: str):
        def showing(driver) -> bool:
            return driver.execute_script(
                "const root = document.getElementById('review'), at = document.getElementById('position');"
                "return Boolean(root && at && root.dataset.ready === 'true' && at.textContent === arguments[0]);",
                position)

        return showing

    return condition
