"""The sweep report: ``sweep_report.md`` (figures beside it) and a self-contained ``sweep_report.html``.

From the verdict to the detail: the best settings and what the search cost; the best trial's test results
against the base model (the only test-split figures of the sweep); the trials sorted by the metric; the
optimization history; parameter importances (Optuna's fANOVA evaluator); one slice plot per parameter.
"""

from __future__ import annotations

import datetime as dt
import time

import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState

from tunesmith.config import dump_config
from tunesmith.config.search_space import resolve
from tunesmith.document import (
    NOT_AVAILABLE,
    Code,
    Document,
    Facts,
    Image,
    Section,
    Table,
    Text,
    format_duration,
    plain,
    write_document,
)
from tunesmith.document.figures import figure_png
from tunesmith.experiments.study import setting_key, trial_values
from tunesmith.results import comparison_table
from tunesmith.sweep_folder import BEST_CONFIG, state_name

REPORT_MD = "sweep_report.md"
REPORT_HTML = "sweep_report.html"
ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3,
         TrialState.FAIL: 4}


def write_sweep_report(sweep, study: optuna.Study, best: optuna.trial.FrozenTrial, result: dict) -> dict:
    write_document(sweep_document(sweep, study, best, result), sweep.folder / REPORT_MD, sweep.folder / REPORT_HTML)
    return {"report_md": str(sweep.folder / REPORT_MD), "report_html": str(sweep.folder / REPORT_HTML)}


def sweep_document(sweep, study: optuna.Study, best: optuna.trial.FrozenTrial, result: dict) -> Document:
    trials = study.get_trials(deepcopy=False)
    return Document(
        title=f"tunesmith sweep: {sweep.folder.name} ({dt.date.today():%Y-%m-%d})",
        subtitle=f"{len(trials)} trials of {sweep.config.method} on {sweep.config.model.name}; "
                 f"{sweep.config.sweep.sampler} sampler, {sweep.config.sweep.pruner} pruner",
        sections=[
            _summary(sweep, trials, best),
            Section("The best trial on the test split", [
                Text(f"Trial {best.number}'s best weights, evaluated once after the search (every choice above was "
                     "made on the validation split)."),
                comparison_table(result)]),
            _trials_section(sweep, trials),
            Section("Optimization history", [Image("sweep_history.png", _history_png(sweep, trials),
                                                   f"{sweep.metric} of each trial and the best so far")]),
            _importance_section(sweep, study),
            _slices_section(sweep, trials),
            Section("The best trial's config", [Code(best.user_attrs.get("config", ""), "yaml")], folded=True),
            Section("The sweep's config", [Code(dump_config(sweep.config), "yaml")], folded=True),
        ],
    )


def setting_text(value) -> str:
    """A sampled setting to 4 significant digits: a learning rate of 0.000443 is not "0.0004"."""
    return f"{value:.4g}" if isinstance(value, float) else plain(value)


def best_settings(sweep, best: optuna.trial.FrozenTrial) -> dict:
    """The config values of the best trial's parameters (``lora.alpha`` itself, not its multiple of r)."""
    return resolve(best.params, sweep.params, sweep.config.model_dump(mode="json"))


def _summary(sweep, trials, best) -> Section:
    states = [trial.state for trial in trials]
    tokens = sum(trial.user_attrs.get("train_tokens", 0) for trial in trials)
    facts = [
        ("metric", f"{sweep.metric} on the validation split ({sweep.direction})"),
        ("best trial", f"{best.number}: {sweep.metric} {best.value:.6g}"),
        *((f"best {key}", setting_text(value)) for key, value in best_settings(sweep, best).items()),
        ("trials", f"{states.count(TrialState.COMPLETE)} done, {states.count(TrialState.PRUNED)} pruned, "
                   f"{states.count(TrialState.FAIL)} failed{_repeats(sweep, trials)}"),
        ("wall time", format_duration(time.time() - sweep.started)),
        ("tokens trained", f"{tokens:,} (every trial, pruned ones included)"),
        ("best config", f"{BEST_CONFIG} (runnable: tunesmith run {BEST_CONFIG})"),
    ]
    return Section("Summary", [Facts(facts)])


def _repeats(sweep, trials) -> str:
    settings = [setting_key(sweep.params, trial.params) for trial in trials if trial.params]
    repeated = len(settings) - len(set(settings))
    return f" ({repeated} of them repeating another trial's settings)" if repeated else ""


def _trial_value(trial) -> float | None:
    if trial.value is not None:
        return trial.value
    return trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None


def _trials_section(sweep, trials) -> Section:
    sign = 1 if sweep.direction == "minimize" else -1

    def order(trial):
        value = _trial_value(trial)
        return ORDER.get(trial.state, 5), sign * value if value is not None else float("inf")

    # One row per setting: an older study may hold the same settings more than once (before every draw was
    # checked against the tried ones); the best of them stands for all, and names the others.
    rows, shown = [], {}
    for trial in sorted(trials, key=order):
        key = setting_key(sweep.params, trial_values(trial))
        if trial.params and key in shown:
            shown[key].append(trial.number)
            continue
        shown[key] = same = []
        seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                   if trial.datetime_complete and trial.datetime_start else None)
        value = _trial_value(trial)
        note = "last reported before pruning" if trial.state == TrialState.PRUNED and value is not None else (
            trial.user_attrs.get("error", ""))
        rows.append([str(trial.number), state_name(trial.state),
                     *(setting_text(trial.params.get(param.key)) for param in sweep.params),
                     f"{value:.6g}" if value is not None else NOT_AVAILABLE,
                     format_duration(seconds) if seconds is not None else "", note, same])
    for row in rows:  # the repeats, known once every trial is placed
        same = row.pop()
        if same:
            repeats = f"the same settings as trial{'s' if len(same) > 1 else ''} {', '.join(map(str, sorted(same)))}"
            row[-1] = f"{row[-1]}; {repeats}" if row[-1] else repeats
    header = ["trial", "state", *(param.label for param in sweep.params), sweep.metric, "time", "note"]
    return Section("Trials", [Table(header, rows, caption=f"sorted by {sweep.metric}, best first")])


def _history_png(sweep, trials) -> bytes:
    done = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    figure = Figure(figsize=(6, 3.2))
    axes = figure.add_subplot()
    numbers = [trial.number for trial in done]
    values = [trial.value for trial in done]
    pick = min if sweep.direction == "minimize" else max
    best_so_far = [pick(values[: index + 1]) for index in range(len(values))]
    axes.plot(numbers, values, "o", label="trial")
    axes.step(numbers, best_so_far, where="post", label="best so far")
    pruned = [(trial.number, _trial_value(trial)) for trial in trials
              if trial.state == TrialState.PRUNED and _trial_value(trial) is not None]
    if pruned:
        axes.plot(*zip(*pruned), "x", color="grey", label="pruned (last value)")
    axes.set_xlabel("trial")
    axes.set_ylabel(sweep.metric)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure_png(figure)


def _importance_section(sweep, study: optuna.Study) -> Section:
    """fANOVA importances (the share of the metric's variance each parameter explains) over the done trials."""
    done = [trial for trial in study.get_trials(deepcopy=False) if trial.state == TrialState.COMPLETE]
    if len(done) < 2 or not sweep.params:
        return Section("Parameter importances", [Text(f"{NOT_AVAILABLE}: fANOVA needs at least 2 finished trials")])
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as error:  # e.g. every trial had the same value of every parameter
        return Section("Parameter importances", [Text(f"{NOT_AVAILABLE}: {error}")])
    figure = Figure(figsize=(6, 0.5 + 0.4 * max(1, len(importances))))
    axes = figure.add_subplot()
    names = list(importances)[::-1]
    axes.barh(names, [importances[name] for name in names])
    axes.set_xlabel("share of the variance of " + sweep.metric)
    figure.tight_layout()
    table = Table(["parameter", "importance"], [[name, f"{value:.3f}"] for name, value in importances.items()])
    return Section("Parameter importances", [table, Image("sweep_importances.png", figure_png(figure),
                                                          "fANOVA parameter importances")])


def _slices_section(sweep, trials) -> Section:
    """One panel per parameter: the metric of each finished trial against that parameter's value."""
    done = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if not done or not sweep.params:
        return Section("Slices", [Text(f"{NOT_AVAILABLE}: no finished trial")])
    figure = Figure(figsize=(3 * len(sweep.params), 3))
    for index, param in enumerate(sweep.params, start=1):
        axes = figure.add_subplot(1, len(sweep.params), index)
        points = [(trial.params[param.key], trial.value) for trial in done if param.key in trial.params]
        if points:
            xs, ys = zip(*points)
            colors = [trial.number for trial in done if param.key in trial.params]
            if param.kind in ("choices", "multiple_of_r"):  # one column per choice, in the order of the space
                axes.scatter([param.choices.index(x) for x in xs], ys, c=colors)
                axes.set_xticks(range(len(param.choices)), [setting_text(choice) for choice in param.choices])
            else:
                axes.scatter(xs, ys, c=colors)
            if param.log:
                axes.set_xscale("log")
        axes.set_xlabel(param.label)
        if index == 1:
            axes.set_ylabel(sweep.metric)
    figure.tight_layout()
    return Section("Slices", [Image("sweep_slices.png", figure_png(figure),
                                    "the metric of each finished trial against each parameter")])
