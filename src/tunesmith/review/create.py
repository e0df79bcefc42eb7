"""`tunesmith review create`: sample test prompts, gather each compared model's answers, and write the blind review
(`tunesmith.review.store`) into ``<run>/review/``.

Answers come from the runs' predictions.jsonl (what `tunesmith eval` wrote: the tuned model's, and the base model's
when it was evaluated with the base) where a line has the same location and prompt as this run's test row; the
rest are generated with evaluation's own code (`tunesmith.predict.answer`, the `evaluate.*` settings of this run),
so a reviewer judges exactly what evaluation scored. Another run's model answers this run's test rows as this
run's data settings render them, through its own tokenizer and chat template (as `compare --against` scores it).

For classification the sample is drawn from the test prompts where the models' labels differ (`disagreements`):
where both give the same label the two answers are the same text, so every such item is a tie by construction and
a reviewer's time on it says nothing. The agreement rate is reported instead (and kept in the review's settings,
so the statistics can say the win rate is over disagreements only). Generation keeps its plain sample.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from rich.console import Console

from tunesmith.atomic import staged_folder
from tunesmith.config.review_section import ReviewConfig
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import BASE_MODEL
from tunesmith.data.example import Example
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.task import Task
from tunesmith.errors import ConfigError, DataError, TunesmithError
from tunesmith.evaluate.preference import init_from_run
from tunesmith.evaluate.tasks import last_user_message
from tunesmith.json_files import read_jsonl
from tunesmith.models import load_base_model, load_tuned_model
from tunesmith.predict.answers import answer, truth_of
from tunesmith.review.names import NAME_HINT, reviewer_name_error
from tunesmith.review.store import (
    DATABASE,
    REVIEW_FOLDER,
    ModelRole,
    ReviewConflict,
    ReviewPlan,
    ReviewPrompt,
    ReviewStore,
    create_database,
    database_path,
)
from tunesmith.run_dir import RunDir
from tunesmith.text import count_of

_console = Console(stderr=True)

@dataclass(frozen=True)
class Contender:
    """A model in the review: ``tuned`` (the run's own), ``base`` (its base model) or ``run`` (another run's)."""

    name: str
    role: ModelRole
    run: RunDir | None
    """The run folder whose best weights it is; None for the base model."""
    source: str
    """Where it comes from, as stored in the review: a run folder's path, or the base model's name."""


def create_review(run: RunDir, against: Sequence[str] = (BASE_MODEL,), settings: ReviewConfig | None = None,
                  overwrite: bool = False) -> dict:
    """Write a new review of ``run``'s tuned model against each of ``against`` (``base`` or a run folder) into
    ``<run>/review/``, replacing an existing one (and its judgments) only with ``overwrite``. ``settings`` default
    to the run's `review:` section. Returns what was made: the database path, the models and how many of their
    answers were generated, the prompt and item counts, and each reviewer's queue length."""
    config = run.config()
    settings = settings or config.review
    for name in settings.reviewers:  # before any answer is generated
        if problem := reviewer_name_error(name):
            raise ConfigError("review.reviewers", problem, NAME_HINT)
    if ReviewStore.exists(run.root) and not overwrite:
        raise ReviewConflict(f"{database_path(run.root)} exists already, with its judgments",
                             "add --overwrite to replace it (its judgments are lost; export them first)")
    contenders = contenders_of(run, config, against)
    inputs = RunInputs(config)
    splits = inputs.splits
    if not splits.test:
        raise DataError(splits.files.get("test", "data"), None, "the test split has no rows, so nothing to review")
    task = inputs.task
    sampling = None
    if task.name == "classification":
        # Every test row's label from every model, to find where they differ: one label per row, the same work as
        # the evaluation that wrote predictions.jsonl (where they are usually read from, not generated).
        everything, generated = gather_answers(contenders, run, config, splits.test, task)
        examples, answers, sampling = disagreements(splits.test, everything, task, settings, len(contenders))
    else:
        examples = sample_prompts(splits.test, task, settings.items, settings.seed)
        answers, generated = gather_answers(contenders, run, config, examples, task)
    plan = review_plan(examples, contenders, answers, settings, task, sampling)
    with run.lock(), staged_folder(run.root / REVIEW_FOLDER) as staging:
        create_database(staging / DATABASE, plan)
    return {"path": str(database_path(run.root)), "models": [contender.name for contender in contenders],
            "generated": generated, "prompts": len(examples), "items": len(plan.items),
            "overlap": plan.settings["overlap"], "sampling": sampling["sentence"] if sampling else None,
            "queues": {reviewer: len(queue) for reviewer, queue in plan.queues.items()}}


def gather_answers(contenders: list[Contender], run: RunDir, config: RunConfig, examples: list[Example],
                   task: Task) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``({model: answer per example}, {model: how many were generated})``."""
    answers, generated = {}, {}
    for contender in contenders:
        answers[contender.name], generated[contender.name] = contender_answers(contender, run, config, examples, task)
    return answers, generated


def same_label(texts: Iterable[str]) -> bool:
    return len({text.strip().casefold() for text in texts}) == 1


def disagreements(examples: list[Example], answers: dict[str, list[str]], task: Task, settings: ReviewConfig,
                  num_models: int) -> tuple[list[Example], dict[str, list[str]], dict]:
    """The sample of a classification review: ``settings.items`` of the test prompts where the models' labels
    differ (stratified as `sample_prompts` does), their answers, and the sampling as reported: the counts and a
    sentence such as "the models agree on 84% of 1,000 test prompts (840); 50 items drawn from the 160 where they
    disagree". An error when they agree everywhere: such a review would be all ties."""
    split = [index for index in range(len(examples)) if not same_label(texts[index] for texts in answers.values())]
    agree, total = len(examples) - len(split), len(examples)
    agreement = f"the models agree on {agree / total:.0%} of {total:,} test prompts ({agree:,})"
    if not split:
        raise TunesmithError(f"nothing to review: {agreement}, so every item would be a tie",
                             "compare with a model that labels differently (--against RUN)")
    position = {id(example): index for index, example in enumerate(examples)}
    chosen = [position[id(example)] for example in sample_prompts([examples[index] for index in split], task,
                                                                  settings.items, settings.seed)]
    unit = "item" if num_models == 2 else "prompt"
    sentence = f"{agreement}; {count_of(len(chosen), unit)} drawn from the {len(split):,} where they disagree"
    return ([examples[index] for index in chosen],
            {model: [texts[index] for index in chosen] for model, texts in answers.items()},
            {"pool": "disagreements", "test_prompts": total, "agree": agree, "disagree": len(split),
             "drawn": len(chosen), "sentence": sentence})


def contenders_of(run: RunDir, config: RunConfig, against: Sequence[str]) -> list[Contender]:
    """The tuned model first, then each of ``against``; an error for a repeated model or a folder that is not a
    run."""
    if not against:
        raise TunesmithError("a review compares the tuned model with at least one other model",
                             "give --against base or --against RUN")
    contenders = [Contender(run.root.resolve().name, "tuned", run, str(run.root))]
    source = init_from_run(config)
    for name in against:
        if name == BASE_MODEL and source is not None:
            # A run that continues from another (model.init_from) is judged against that run's model, its base.
            name = str(source.root)
        if name == BASE_MODEL:
            contenders.append(Contender(BASE_MODEL, "base", None, config.model.name))
            continue
        other = RunDir(name)
        other.config()  # an error naming the folder when it is not a run
        contenders.append(Contender(other.root.resolve().name, "run", other, str(other.root)))
    names = [contender.name for contender in contenders]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TunesmithError(f"the review would compare {', '.join(repeated)} with itself: models are named by "
                             "their run folder's name, which must differ", "give each model once")
    return contenders


def sample_prompts(examples: list[Example], task: Task, count: int, seed: int) -> list[Example]:
    """``count`` of ``examples`` (all when there are fewer), in test order. For classification the sample keeps each
    label's share of the test rows (largest remainder: every label gets its share rounded down, and the labels with
    the largest leftover fractions one more), so a review of a skewed task is not all one label."""
    if count >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    strata: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        strata.setdefault(truth_of(example) if task.name == "classification" else "", []).append(index)
    exact = {label: count * len(indices) / len(examples) for label, indices in strata.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    by_leftover = sorted(strata, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_leftover[:count - sum(quotas.values())]:
        quotas[label] += 1
    chosen = [index for label, indices in strata.items() for index in rng.sample(indices, quotas[label])]
    return [examples[index] for index in sorted(chosen)]


def contender_answers(contender: Contender, run: RunDir, config: RunConfig, examples: list[Example],
                      task: Task) -> tuple[list[str], int]:
    """The contender's answer to each example, and how many of them had to be generated."""
    known = known_answers(contender, run)

    def usable(example: Example) -> bool:
        prompt, text = known.get(example.location, (None, None))
        return text is not None and prompt == last_user_message(example)

    missing = [example for example in examples if not usable(example)]
    generated = {}
    if missing:
        _console.print(f"generating {len(missing)} answers of {contender.name} (not in its predictions.jsonl)")
        model, tokenizer = load_contender(contender, config)
        texts = answer(model, tokenizer, missing, task, config.evaluate).predictions
        generated = {example.location: text for example, text in zip(missing, texts)}
    return [generated[example.location] if example.location in generated else known[example.location][1]
            for example in examples], len(missing)


def known_answers(contender: Contender, run: RunDir) -> dict[str, tuple[str, str | None]]:
    """``location → (prompt, answer)`` from the predictions.jsonl that holds the contender's answers."""
    folder, field = (run, "base_prediction") if contender.run is None else (contender.run, "tuned_prediction")
    return {row["location"]: (row.get("prompt"), row.get(field)) for row in read_jsonl(folder.predictions)
            if isinstance(row, dict) and "location" in row}


def load_contender(contender: Contender, config: RunConfig):
    """``(model, tokenizer)`` of a contender, as evaluation loads it (adapters merged)."""
    if contender.run is None:
        return load_base_model(config.model)
    return load_tuned_model(contender.run.root, merge=True)


def review_plan(examples: list[Example], contenders: list[Contender], answers: dict[str, list[str]],
                settings: ReviewConfig, task: Task, sampling: dict | None = None) -> ReviewPlan:
    """The review's content: one item per prompt and pair of models (for classification, only the pairs whose
    labels differ on that prompt: an agreeing pair is a tie by construction), and the reviewers' blind queues.
    ``sampling`` (`disagreements`) is kept in the review's settings."""
    prompts = [ReviewPrompt(location=example.location, system=system_of(example), prompt=prompt_for_review(example),
                            reference=example.reference, label=example.label,
                            answers={contender.name: answers[contender.name][index] for contender in contenders})
               for index, example in enumerate(examples)]
    pairs = list(combinations([contender.name for contender in contenders], 2))
    items = [(index, first, second) for index in range(len(examples)) for first, second in pairs
             if task.name != "classification" or not same_label((answers[first][index], answers[second][index]))]
    rng = random.Random(settings.seed)
    overlap = settings.overlap_count(len(items)) if len(settings.reviewers) > 1 else 0
    queues = {}
    for reviewer, shown in share_items(len(items), settings.reviewers, overlap, rng).items():
        # Each (item, reviewer) gets its own coin flip for the sides; the queue keeps it, so verdicts map back.
        queues[reviewer] = [(index, *(items[index][1:] if rng.random() < 0.5 else items[index][:0:-1]))
                            for index in shown]
    return ReviewPlan(models=[(contender.name, contender.role, contender.source) for contender in contenders],
                      prompts=prompts, items=items, queues=queues, rubric=settings.rubric,
                      show_reference=settings.show_reference,
                      settings={"task": task.name, "seed": settings.seed, "overlap": overlap,
                                **({"sampling": sampling} if sampling else {})})


def share_items(num_items: int, reviewers: list[str], overlap: int, rng: random.Random) -> dict[str, list[int]]:
    """Each reviewer's items in queue order: ``overlap`` items that everyone judges, plus an equal share (one apart
    at most) of the rest, shuffled together so the shared items are spread through each queue."""
    order = rng.sample(range(num_items), num_items)
    if len(reviewers) == 1:
        return {reviewers[0]: order}
    shared, rest = order[:overlap], order[overlap:]
    queues = {}
    for number, reviewer in enumerate(reviewers):
        mine = shared + rest[number::len(reviewers)]
        queues[reviewer] = rng.sample(mine, len(mine))
    return queues


def system_of(example: Example) -> str | None:
    systems = [message["content"] for message in example.prompt_messages if message["role"] == "system"]
    return "\n\n".join(systems) if systems else None


def prompt_for_review(example: Example) -> str:
    """What the models were asked, without the system prompt: the user message, or for a conversation every turn
    with its speaker."""
    turns = [message for message in example.prompt_messages if message["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{message['role']}: {message['content']}" for message in turns)
