"""The run page in a real headless Chromium at 1366x900 (the issue's screen): the verdict at the top (a degenerate
run flagged), the data check as tables with its findings first and the template sample as text, a loss chart whose
validation points stay visible after a first step at 9 (a log axis), a preference run's rewards and preference
accuracy charts (and none for a supervised run), one status for a folder with both eval.json and failure.json, and
the live note's total and time left. The runs are written here, small and fast: no model."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings

WAIT_S = 20
MAX_PAGE_PX = 3_000
"""The demo run's page was 11,748 px tall with data_summary.json dumped as JSON."""
SAMPLE = ("<|im_start|>system\nClassify each SMS message as ham or spam.<|im_end|>\n<|im_start|>user\nGo until "
          "jurong point, crazy..<|im_end|>\n<|im_start|>assistant\n[[ham<|im_end|>]]\n")
VALIDATION = [(100, 0.0486), (200, 0.0158)]


def write_config(root: Path, **train) -> RunDir:
    root.mkdir(parents=True)
    run = RunDir(root)
    save_config(validate_config({"model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct"},
                                 "data": {"train": "train.jsonl", "format": "classification"},
                                 "train": {"learning_rate": 5e-4, **train}}), run.config_path)
    return run


def data_summary() -> dict:
    """A data check's summary the size of the SMS demo's: three splits with 30-bin histograms, 12 findings each
    listing 20 rows, the template sample."""
    def split(rows: int) -> dict:
        return {"rows": rows, "file": f"/data/sms/{'test' if rows == 1000 else 'train'}.jsonl",
                "tokens": {"min": 28, "mean": 51.0, "median": 44.0, "p95": 89.0, "max": 232},
                "truncated_rows": 0, "supervised_tokens_lost": 0, "rows_without_supervision": 0,
                "label_counts": {"ham": round(rows * 0.885), "spam": rows - round(rows * 0.885)},
                "label_fractions": {"ham": 0.885, "spam": 0.115},
                "length_histogram": {"edges": [28.0 + 8.73 * i for i in range(31)],
                                     "counts": [max(0, 500 - 60 * i) for i in range(30)]}}

    kinds = ["duplicate", "near_duplicate", "length_outlier", "non_printable"]
    findings = [{"kind": kind, "split": name, "count": 27, "message": f"27 rows: {kind} in {name}",
                 "locations": [f"/data/sms/{name}.jsonl:{n} (same as /data/sms/{name}.jsonl:65)" for n in range(20)],
                 "more": 7} for name in ("train", "test") for kind in kinds]
    findings += [{"kind": "leakage", "split": "train/test", "count": 59,
                  "message": "59 rows of test also in train: their scores overstate the model",
                  "locations": [f"/data/sms/test.jsonl:{n}" for n in range(20)], "more": 39}]
    return {"format": "classification", "labels": ["ham", "spam"], "max_length": 256, "loss_on": "assistant",
            "splits": {"train": split(1600), "validation": split(183), "test": split(1000)},
            "unreadable": [], "unreadable_count": 0, "findings": findings,
            "sample": {"location": "/data/sms/train.jsonl:1", "split": "train", "text": SAMPLE,
                       "supervised_tokens": 2, "total_tokens": 56, "round_trip": "ok"},
            "has_problems": True}


def evaluation(confusion: list[list[int]], tuned: float, base: float, majority: float, tfidf: float) -> dict:
    rows = sum(map(sum, confusion))
    return {"task": "classification", "labels": ["ham", "spam"], "num_examples": rows,
            "base": {"accuracy": base}, "tuned": {"accuracy": tuned, "confusion_matrix": {
                "labels": ["ham", "spam"], "matrix": confusion}},
            "delta": {"accuracy": tuned - base},
            "baselines": {"majority": {"accuracy": majority}, "tfidf_logreg": {"accuracy": tfidf}}}


def write_lines(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


PREFERENCE_VALIDATION = [(10, 0.55, 0.4), (20, 0.6, 0.9), (30, 0.7, 1.5)]
"""(step, val_preference_accuracy, val_reward_margin) of the preference run."""
ODD_KEY = "val_<img src=x onerror=window.__xss=1>"
"""A metrics.jsonl key holding markup: drawn as a legend's text, never parsed."""
SYSTEM_PROMPT = "<b>be brief</b><script>window.__xss=1</script>"


def write_preference_run(root: Path) -> RunDir:
    """A DPO run of 30 steps: rewards, margin and preference accuracy per step, validations at steps 10, 20, 30."""
    root.mkdir(parents=True)
    run = RunDir(root)
    save_config(validate_config({"model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "method": "dpo",
                                 "data": {"train": "pairs.jsonl", "format": "preference",
                                          "system_prompt": SYSTEM_PROMPT},
                                 "train": {"learning_rate": 5e-6, "max_steps": 30}}), run.config_path)
    steps = [{"step": s, "loss": 0.69 - s / 100, "pairs": 8, "rewards_chosen": 0.05 * s, "rewards_rejected": -0.03 * s,
              "reward_margin": 0.08 * s, "preference_accuracy": 0.5 + s / 100, "elapsed_s": 2.0 * s}
             for s in range(1, 31)]
    validations = [{"step": step, "val_loss": 0.6, "val_preference_accuracy": accuracy, "val_reward_margin": margin,
                    ODD_KEY: 0.5} for step, accuracy, margin in PREFERENCE_VALIDATION]
    write_lines(run.metrics, steps + validations)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runpage-runs")
    demo = write_config(root / "demo", max_steps=200)
    # A first step at 9, then noise around 0.02: on a linear axis everything after step 5 is one flat line.
    write_lines(demo.metrics, [{"step": s, "loss": 0.02 + 9 * math.exp(-(s - 1) / 6) * (1 + 0.3 * math.sin(s)),
                                "elapsed_s": 2.5 * s} for s in range(1, 201)]
                + [{"step": step, "val_loss": value} for step, value in VALIDATION])
    demo.data_summary.write_text(json.dumps(data_summary()))
    demo.eval_json.write_text(json.dumps(evaluation([[848, 8], [9, 135]], 0.983, 0.719, 0.856, 0.97)))
    demo.train_summary.write_text(json.dumps({"steps": 200, "planned_steps": 200}))

    # The degenerate run: "ham" to every one of 80 messages, +0.15 over the base, equal to the majority.
    degenerate = write_config(root / "degenerate", max_steps=30)
    degenerate.eval_json.write_text(json.dumps(evaluation([[65, 0], [15, 0]], 0.8125, 0.6625, 0.8125, 0.9875)))

    failure = {"stage": "report", "error": "disk full", "time": "2026-11-30T12:00:00"}
    for name, eval_time, failure_time in (("failed-after-eval", 1_000, 2_000),
                                          ("evaluated-after-failure", 2_000, 1_000)):
        run = write_config(root / name, max_steps=30)
        run.eval_json.write_text(json.dumps(evaluation([[60, 5], [5, 10]], 0.875, 0.6, 0.8125, 0.85)))
        run.failure.write_text(json.dumps(failure))
        os.utime(run.eval_json, (eval_time, eval_time))
        os.utime(run.failure, (failure_time, failure_time))

    write_preference_run(root / "preference")

    training = write_config(root / "training", max_steps=200)
    write_lines(training.metrics, [{"step": s, "loss": 9.0 / s, "elapsed_s": 1.0 * s} for s in range(1, 13)])
    return root


@pytest.fixture(scope="module")
def ui(serve_ui, runs) -> str:
    with RunDir(runs / "training").lock():  # held as a training process holds it: the run reads as running
        yield serve_ui(UiSettings(runs_dir=runs))


@pytest.fixture(scope="module")
def page(browser, ui):
    """``page(name)``: the run's page at 1366x900, once its script drew the curves (or said why not)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1366, 900)

    def open_page(name: str):
        browser.get(f"{ui}/runs/{name}")
        WebDriverWait(browser, WAIT_S).until(lambda driver: driver.execute_script(
            "return document.getElementById('curve-note').textContent !== ''"), message=f"{name}'s curve note")
        return browser

    return open_page


def css(browser, selector: str):
    return browser.find_element("css selector", selector)


def test_a_degenerate_run_is_flagged_at_the_top(page):
    browser = page("degenerate")
    verdict = css(browser, "#verdict")
    assert verdict.get_attribute("data-level") == "degenerate"
    assert "verdict-warning" in verdict.get_attribute("class") and verdict.get_attribute("role") == "alert"
    assert verdict.text.startswith("⚠ Verdict: degenerate (answers one label to every row) · 80 test rows")
    assert "Degenerate: the tuned model answers 'ham' to every test row." in verdict.text
    assert "Does not beat TF-IDF + logistic regression, the best classic baseline (0.9875, -0.1750)." in verdict.text
    assert verdict.location["y"] < 200  # at the top, above the fold
    assert verdict.value_of_css_property("background-color") == "rgba(254, 226, 226, 1)"  # the warning banner
    good = page("demo")
    assert css(good, "#verdict").get_attribute("data-level") == "good"
    assert css(good, "#verdict").text.startswith("Verdict: good (beats base +0.2640; beats TF-IDF + logistic "
                                                 "regression +0.0130) · 1,000 test rows")
    model = css(good, ".run-model")  # the model by its name, the whole id on hover
    assert (model.text, model.get_attribute("title")) == ("SmolLM2-135M-Instruct",
                                                          "HuggingFaceTB/SmolLM2-135M-Instruct")


def test_the_data_section_is_tables_with_findings_first_and_the_page_stays_short(page):
    browser = page("demo")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    assert height < MAX_PAGE_PX, f"the run page is {height} px tall"
    data = css(browser, "#data-summary")
    captions = [caption.text for caption in data.find_elements("css selector", "table caption")]
    assert captions[0] == "Data check findings"
    assert {"Splits", "Label balance", "Tokens per row (before truncation)"} <= set(captions)
    findings = data.find_element("css selector", "table").find_elements("css selector", "tbody tr")
    assert len(findings) == 9 and findings[-1].text.startswith("leakage train/test 59")
    sample = data.find_element("css selector", "pre").text
    assert sample.startswith("<|im_start|>system\nClassify each SMS message") and "[[ham<|im_end|>]]" in sample
    assert "\\u003c" not in browser.page_source and '"locations"' not in browser.page_source  # no raw JSON
    link = css(browser, '#data a[href$="/data_summary.json"]')
    assert json.loads(browser.execute_script(
        "const r = new XMLHttpRequest(); r.open('GET', arguments[0], false); r.send(); return r.responseText;",
        link.get_attribute("href")))["findings"][0]["more"] == 7  # the whole summary, a click away


def test_the_loss_chart_is_log_scaled_and_its_validation_points_are_drawn(page):
    browser = page("demo")
    chart = browser.execute_script("const c = document.getElementById('loss-chart');"
                                   "return {scale: c.dataset.scale, plot: c.chart.plot, lines: c.chart.lines};")
    assert chart["scale"] == "log" and "log scale" in css(browser, "#loss-caption").text
    plot, (train, validation) = chart["plot"], chart["lines"]
    assert validation["label"] == "val_loss" and len(validation["pixels"]) == 2
    (x100, y100), (_, y200) = validation["pixels"]
    for y in (y100, y200):
        assert plot["top"] < y < plot["bottom"]
    # On a linear axis from 0 to 9 the two validations (0.049, 0.016) would be one pixel apart, on the floor.
    assert y200 - y100 > 20 and plot["bottom"] - y200 > 10
    assert abs(train["pixels"][99][1] - y100) > 10  # off the training line (0.02 at step 100)
    red = browser.execute_script("const c = document.getElementById('loss-chart');"
                                 "return Array.from(c.getContext('2d').getImageData(arguments[0], arguments[1], 1, 1)"
                                 ".data);", round(x100), round(y100))
    assert red == [220, 38, 38, 255]  # the validation point's dot, in the validation line's color
    assert css(browser, "#val-figure").get_attribute("hidden") is not None  # no empty validation-metrics chart
    assert css(browser, "#curve-note").text == "200 training steps"


def test_a_folder_with_eval_and_failure_has_one_status(page):
    browser = page("failed-after-eval")
    assert [status.text for status in browser.find_elements("css selector", "h1 .status")] == ["failed"]
    assert css(browser, "#failure").text == "Failed in stage report (2026-11-30T12:00:00): disk full"
    browser = page("evaluated-after-failure")
    assert [status.text for status in browser.find_elements("css selector", "h1 .status")] == ["done"]
    assert browser.find_elements("css selector", "#failure") == []
    assert css(browser, "#past-failure").text.startswith("A past failure, older than the evaluation: stage report")


def test_a_training_run_says_its_total_its_time_left_and_its_real_path(page, runs):
    browser = page("training")
    assert css(browser, "#curve-note").text == "training: step 12 of 200, about 3 minutes left; refreshed every 3 s"
    path = str((runs / "training").resolve())
    assert css(browser, "#verdict").text == f"Not evaluated yet\ntunesmith eval {path} scores it on the test rows."
    evaluation_section = browser.find_element("xpath", "//h2[.='Evaluation']/..")
    assert f"Not evaluated yet (tunesmith eval {path})." in evaluation_section.text


def chart_of(browser, canvas_id: str) -> dict:
    return browser.execute_script(
        "const canvas = document.getElementById(arguments[0]); const figure = canvas.closest('figure');"
        "return {hidden: figure.hidden, caption: figure.querySelector('figcaption').textContent,"
        "        plot: canvas.chart.plot, lines: canvas.chart.lines.map((l) => ({label: l.label, pixels: l.pixels}))};",
        canvas_id)


def values_of(line: dict, first: float, last: float) -> list[float]:
    """The values a line's pixels stand for on its chart's linear axis, read back through its first and last point
    (whose values are known)."""
    y_first, y_last = line["pixels"][0][1], line["pixels"][-1][1]
    return [first + (y - y_first) * (last - first) / (y_last - y_first) for _, y in line["pixels"]]


def test_a_preference_run_shows_its_rewards_and_its_preference_accuracy(page):
    browser = page("preference")
    rewards, accuracy = chart_of(browser, "rewards-chart"), chart_of(browser, "preference-chart")
    assert not rewards["hidden"] and not accuracy["hidden"]
    assert rewards["caption"].startswith("rewards: the chosen and the rejected answers' implicit rewards")
    assert [line["label"] for line in rewards["lines"]] == ["rewards_chosen", "rewards_rejected", "reward_margin",
                                                           "val_reward_margin"]
    assert [line["label"] for line in accuracy["lines"]] == ["preference_accuracy", "val_preference_accuracy"]
    chosen, rejected, margin, validation_margin = rewards["lines"]
    assert [len(line["pixels"]) for line in rewards["lines"]] == [30, 30, 30, 3]
    # The last step: margin 2.4 above chosen 1.5 above rejected -0.9 (a smaller y is higher on the canvas).
    assert margin["pixels"][-1][1] < chosen["pixels"][-1][1] < rejected["pixels"][-1][1]
    # On the margin's own axis the validation margins read back as logged (the two lines share the chart's axis).
    plotted = values_of({"pixels": [margin["pixels"][0], *validation_margin["pixels"], margin["pixels"][-1]]},
                        0.08, 2.4)
    assert plotted[1:-1] == pytest.approx([margin for _, _, margin in PREFERENCE_VALIDATION], abs=0.01)
    train, validation = accuracy["lines"]
    assert values_of(train, 0.51, 0.8)[14] == pytest.approx(0.65, abs=0.005)  # step 15
    plotted = values_of({"pixels": [train["pixels"][0], *validation["pixels"], train["pixels"][-1]]}, 0.51, 0.8)
    assert plotted[1:-1] == pytest.approx([accuracy for _, accuracy, _ in PREFERENCE_VALIDATION], abs=0.005)
    for chart in (rewards, accuracy):
        assert all(chart["plot"]["top"] <= y <= chart["plot"]["bottom"] for line in chart["lines"]
                   for _, y in line["pixels"])
    # The preference validations are drawn there, not again among the validation metrics.
    assert [line["label"] for line in chart_of(browser, "val-chart")["lines"]] == [ODD_KEY]


def test_a_preference_run_s_text_is_shown_as_text(page):
    browser = page("preference")
    assert SYSTEM_PROMPT in css(browser, "#config").get_attribute("textContent")
    assert browser.execute_script("return window.__xss === undefined && !document.querySelector('main img, #config b')")


def test_a_supervised_run_has_no_preference_charts(page):
    browser = page("demo")
    assert browser.find_elements("css selector", "figure.extra-chart, #rewards-chart, #preference-chart") == []
