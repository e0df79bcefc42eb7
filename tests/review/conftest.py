"""Review databases built from synthetic plans (no models): what the store, stats and export tests read."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tunesmith.config import save_config, validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.evaluate.tasks import last_user_message
from tunesmith.review.store import ReviewPlan, ReviewPrompt, create_database, database_path
from tunesmith.run_dir import RunDir


@pytest.fixture(autouse=True)
def _absl_logging_off_the_capture():
    """rouge_score (the ROUGE-L of a reference judge) imports absl, whose log handler keeps the ``sys.stderr`` of
    that moment: under pytest, a capture that is closed later, so a later test's logging or the interpreter's exit
    writes to a closed file and the run dies ("lost sys.stderr"). After each test the handler gets the real
    stderr back."""
    yield
    if absl_logging := sys.modules.get("absl.logging"):
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


def synthetic_plan(num_prompts: int = 4, reviewers: tuple[str, ...] = ("ann", "bob"), show_reference: bool = False,
                   models: tuple[str, ...] = ("tuned", "base")) -> ReviewPlan:
    """``num_prompts`` prompts whose answers name their model (``"<model> says <n>"``), one item per prompt and
    pair of models, every reviewer's queue holding every item with A/B alternating by position."""
    prompts = [ReviewPrompt(location=f"test.jsonl:{n + 1}", system="Be brief." if n % 2 else None,
                            prompt=f"question {n}", reference=f"answer {n}", label=None,
                            answers={model: f"{model} says {n}" for model in models})
               for n in range(num_prompts)]
    pairs = [(first, second) for i, first in enumerate(models) for second in models[i + 1:]]
    items = [(n, first, second) for n in range(num_prompts) for first, second in pairs]
    queues = {reviewer: [(index, *(pair if (index + offset) % 2 == 0 else pair[::-1]))
                         for index, (_, *pair) in enumerate(items)]
              for offset, reviewer in enumerate(reviewers)}
    roles = {"tuned": "tuned", "base": "base"}
    return ReviewPlan(models=[(model, roles.get(model, "run"), None) for model in models], prompts=prompts,
                      items=items, queues=queues, rubric=["correct", "helpful", "fluent"],
                      show_reference=show_reference, settings={"seed": 0})


def write_review(run_root: Path, plan: ReviewPlan) -> Path:
    path = database_path(run_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    create_database(path, plan)
    return run_root


@pytest.fixture()
def review_run(tmp_path) -> Path:
    """A folder holding a review of 4 prompts, tuned vs base, reviewers ann and bob."""
    return write_review(tmp_path / "run", synthetic_plan())


@pytest.fixture()
def make_review(tmp_path):
    """``make_review(**synthetic_plan_options)`` → a folder holding that review."""
    def make(name: str = "run", **options) -> Path:
        return write_review(tmp_path / name, synthetic_plan(**options))

    return make


@pytest.fixture()
def review_with_answers(tmp_path):
    """``review_with_answers([(reference, tuned's answer, base's answer), ...])`` → a folder holding a review of one
    item per row (prompts ``question <n>``; tuned is each item's first model), reviewers ann and bob."""
    def make(rows: list[tuple[str | None, str, str]], name: str = "run") -> Path:
        plan = synthetic_plan(num_prompts=len(rows))
        prompts = [dataclasses.replace(prompt, reference=reference, answers={"tuned": tuned, "base": base})
                   for prompt, (reference, tuned, base) in zip(plan.prompts, rows)]
        return write_review(tmp_path / name, dataclasses.replace(plan, prompts=prompts))

    return make


def tiny_run(root: Path, model_dir: Path, data: dict, seed: int) -> Path:
    """A finished LoRA run on the tiny model: config.yaml and a random non-zero adapter as its best weights."""
    run = RunDir(root)
    root.mkdir(parents=True)
    save_config(validate_config({"model": {"name": str(model_dir)}, "method": "lora", "data": data,
                                 "evaluate": {"batch_size": 2, "max_new_tokens": 4, "compare_base": False},
                                 "review": {"items": 4, "reviewers": ["ann", "bob"], "overlap": 2}}),
                run.config_path)
    torch.manual_seed(seed)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), adapter).save_pretrained(run.best)
    return root


@pytest.fixture()
def tiny_runs(tmp_path, tiny_model_dir, write_jsonl) -> tuple[Path, Path]:
    """Two generation runs (different adapters) on the tiny model, with 6 test prompts and no predictions yet."""
    rows = [{"prompt": f"Write about the sea {n}.", "completion": f"The waves roll in {n}."} for n in range(6)]
    data = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
    return (tiny_run(tmp_path / "tuned-run", tiny_model_dir, data, seed=1),
            tiny_run(tmp_path / "other-run", tiny_model_dir, data, seed=2))


@pytest.fixture()
def spam_run(tmp_path, tiny_model_dir, write_jsonl):
    """A classification run (ham/spam, 10 test rows, 4 of them spam) whose predictions.jsonl has the tuned
    model's labels (right on every row) and the base model's ("ham" on every row): they disagree on the 4 spam."""
    rows = [{"text": f"message {n}", "label": "spam" if n % 5 in (1, 3) else "ham"} for n in range(10)]
    data = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
    root = tiny_run(tmp_path / "spam-run", tiny_model_dir, {**data, "format": "classification"}, seed=1)
    run = RunDir(root)
    test = RunInputs(run.config()).splits.test
    lines = [{"location": example.location, "prompt": last_user_message(example), "reference": example.label,
              "tuned_prediction": example.label, "base_prediction": "ham"} for example in test]
    run.predictions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


@pytest.fixture(scope="session")
def judge_for():
    """``judge_for(store, reviewer, item_id, better, comment="", scores=None)``: judge an item by what should win
    (a model name, ``tie`` or ``both_bad``), whichever side that model was shown on; ``scores`` is {model: {...}}."""
    def judge(store, reviewer: str, item_id: int, better: str, comment: str = "", scores: dict | None = None):
        _, model_a, model_b = next(entry for entry in store.queue(reviewer) if entry[0] == item_id)
        verdict = {model_a: "a", model_b: "b"}.get(better, better)
        scores = scores or {}
        store.judge(reviewer, item_id, verdict, comment, scores.get(model_a), scores.get(model_b))

    return judge


class StubJudge:
    """An OpenAI-compatible chat completions endpoint whose verdicts are known: it prefers the answer that starts
    with ``prefer``; on prompts in ``biased`` it always says A (pure position bias); on prompts in ``mute`` it
    names no verdict; ``status`` other than 200 answers that HTTP error; ``delay_s`` delays every answer."""

    def __init__(self):
        self.prefer, self.biased, self.mute = "tuned", set(), set()
        self.status, self.delay_s = 200, 0.0
        self.requests: list[dict] = []

    def reply(self, body: dict) -> str:
        text = body["messages"][-1]["content"]
        prompt = text.split("Request:\n", 1)[1].split("\n\n", 1)[0]
        answer_a = text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
        answer_b = text.split("Answer B:\n", 1)[1]
        self.requests.append({"prompt": prompt, "a": answer_a, "b": answer_b, "model": body["model"]})
        if prompt in self.mute:
            return "Both have merits; I cannot decide."
        if prompt in self.biased:
            return "The first one reads better.\nVERDICT: A"
        side = "A" if answer_a.startswith(self.prefer) else "B" if answer_b.startswith(self.prefer) else "TIE"
        return f"Answer {side} is more accurate.\nVERDICT: {side}"


@pytest.fixture()
def stub_judge(serving):
    """``(url, stub)``: a `StubJudge` served by uvicorn on a free 127.0.0.1 port in a thread."""
    stub = StubJudge()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        if stub.delay_s:
            time.sleep(stub.delay_s)
        if stub.status != 200:
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=stub.status)
        content = stub.reply(await request.json())
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

    @app.get("/health")
    async def health():
        return {"ok": True}

    with serving(app, "/health") as url:
        yield url, stub
