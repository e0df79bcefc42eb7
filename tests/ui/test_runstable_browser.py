"""The runs table, compare and token mode in a real headless Chromium at the issue's screen size (1366x900), on a
folder of runs like a person's: the demo run (1,000 test rows, six metrics, baselines, a failed gate), a 30-step run
that answers "ham" to every one of its 80 test rows (degenerate: no better than the majority class), a run scored on
the demo's rows again, a Hub model's run and a full fine-tune not evaluated yet."""

from __future__ import annotations

import json

import httpx
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings

SCREEN = (1366, 900)
LABELS = ["ham", "spam"]


def write_config(root, model="default", method="lora", train=None, lora=None) -> RunDir:
    root.mkdir(parents=True)
    run = RunDir(root)
    config = {"model": {"name": model}, "method": method, "data": {"train": "train.jsonl", "format": "classification"},
              "train": {"learning_rate": 5e-4, "epochs": 1.0, **(train or {})}}
    if lora:
        config["lora"] = lora
    save_config(validate_config(config), run.config_path)
    return run


def scores(accuracy: float, matrix: list[list[int]], loss: float, **others) -> dict:
    return {"accuracy": accuracy, "precision": others.get("precision", accuracy - 0.02),
            "recall": others.get("recall", accuracy - 0.03), "f1": others.get("f1", accuracy - 0.025),
            "confusion_matrix": {"labels": LABELS, "matrix": matrix}, "loss": loss, "perplexity": 2.718281828 ** loss}


def sample_rows(count: int, text: str) -> list[tuple[str, str]]:
    return [(f"{text} {n}", "spam" if n % 7 == 0 else "ham") for n in range(count)]


def write_evaluation(run: RunDir, rows: list[tuple[str, str]], base: dict, tuned: dict, baselines: dict) -> None:
    """eval.json as evaluations before its ``test_set`` field wrote it, and predictions.jsonl with the rows."""
    delta = {key: tuned[key] - base[key] for key in tuned if isinstance(tuned[key], float)}
    run.eval_json.write_text(json.dumps({"task": "classification", "labels": LABELS, "num_examples": len(rows),
                                         "base": base, "tuned": tuned, "delta": delta, "baselines": baselines}))
    run.predictions.write_text("".join(json.dumps({"location": f"test.jsonl:{n + 1}", "prompt": prompt,
                                                   "reference": reference}) + "\n"
                                       for n, (prompt, reference) in enumerate(rows)))


@pytest.fixture(scope="module")
def people_runs(tmp_path_factory, gate_example):
    root = tmp_path_factory.mktemp("runstable-runs")
    demo_rows = sample_rows(1000, "SMS: are you free tonight? number")
    majority = {"majority": scores(0.856, [[856, 0], [144, 0]], 0.0, precision=0.428, recall=0.5, f1=0.4612),
                "tfidf_logreg": scores(0.97, [[838, 18], [12, 132]], 0.0)}
    for baseline in majority.values():
        del baseline["loss"], baseline["perplexity"]
    demo = write_config(root / "sms-spam-demo", lora={"r": 16, "alpha": 32.0})
    write_evaluation(demo, demo_rows, scores(0.719, [[709, 147], [134, 10]], 7.3768),
                     scores(0.983, [[848, 8], [9, 135]], 0.0246), majority)
    gate_example(demo.root, failed=("against_baseline", "general_ability"))
    again = write_config(root / "sms-spam-demo-lr-2e-4-alpha-64", train={"learning_rate": 2e-4},
                         lora={"r": 32, "alpha": 64.0})
    write_evaluation(again, list(reversed(demo_rows)), scores(0.719, [[709, 147], [134, 10]], 7.3768),
                     scores(0.975, [[845, 11], [14, 130]], 0.031), majority)
    short = write_config(root / "sms-spam-30steps", train={"max_steps": 30}, lora={"r": 16, "alpha": 32.0})
    write_evaluation(short, sample_rows(80, "short test SMS"),
                     scores(0.6625, [[50, 15], [12, 3]], 9.1), scores(0.8125, [[65, 0], [15, 0]], 0.41),
                     {"majority": {"accuracy": 0.8125}, "tfidf_logreg": {"accuracy": 0.9875}})
    for run, last in ((demo, 0.02), (again, 0.03)):  # curves as real runs draw them: ~9 at the first step
        lines = [{"step": step, "loss": 9.0 * (last / 9.0) ** ((step - 1) / 19)} for step in range(1, 21)]
        (run.root / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_config(root / "qwen-dora-sms-longer-context", model="Qwen/Qwen2.5-0.5B-Instruct", method="dora",
                 train={"learning_rate": 2e-5}, lora={"r": 8, "alpha": 16.0})
    write_config(root / "sms-full-finetune", method="full", train={"learning_rate": 1e-5, "epochs": 3.0})
    return root


@pytest.fixture(scope="module")
def ui(serve_ui, people_runs) -> str:
    return serve_ui(UiSettings(runs_dir=people_runs))


@pytest.fixture(scope="module")
def screen(start_browser):
    """A browser whose page is exactly 1366x900 CSS pixels (the window's size alone would include no margin for
    scroll bars on some builds: set the viewport itself)."""
    driver = start_browser()
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": SCREEN[0], "height": SCREEN[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


@pytest.fixture(scope="module")
def screenshot(screen, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return lambda name: screen.save_screenshot(str(folder / f"runstable-{name}.png"))


def rows_of(driver) -> dict:
    return {row.get_attribute("data-run"): row for row in driver.find_elements("css selector", "#runs tbody tr")}


def test_the_degenerate_run_is_marked_and_settings_and_models_read_as_a_person_writes_them(screen, ui, screenshot):
    screen.get(ui)
    rows = rows_of(screen)
    levels = {name: row.get_attribute("data-verdict") for name, row in rows.items()}
    assert levels == {"sms-spam-demo": "mixed", "sms-spam-demo-lr-2e-4-alpha-64": "good",
                      "sms-spam-30steps": "degenerate", "qwen-dora-sms-longer-context": "unknown",
                      "sms-full-finetune": "unknown"}
    degenerate = rows["sms-spam-30steps"]
    verdict = degenerate.find_element("css selector", ".runs-verdict")
    assert verdict.text == "degenerate answers 'ham' to every row"
    assert "Degenerate: the tuned model answers 'ham' to every test row." in verdict.get_attribute("title")
    delta = degenerate.find_element("css selector", 'td[data-metric="accuracy"] .delta')
    assert delta.text == "⚠ +0.1500" and "degenerate" in delta.get_attribute("title")
    assert "runs-delta-flagged" not in rows["sms-spam-demo"].get_attribute("innerHTML")
    demo = rows["sms-spam-demo"]
    assert "gate failed" in demo.find_element("css selector", ".runs-verdict").text  # the gate is in the verdict
    assert demo.find_element("css selector", ".gate-cell").text == "failed: against_baseline, general_ability"
    settings = demo.find_element("css selector", ".runs-settings").text.split()
    assert settings == ["lr=0.0005", "epochs=1", "r=16", "alpha=32"]
    assert rows["qwen-dora-sms-longer-context"].find_element("css selector", ".runs-settings").text.split()[0] == \
        "lr=2e-5"
    assert demo.find_element("css selector", ".runs-model").text.splitlines()[0] == "SmolLM2-135M-Instruct"
    assert rows["qwen-dora-sms-longer-context"].find_element("css selector", ".runs-model").text.splitlines()[0] == \
        "Qwen2.5-0.5B-Instruct"
    screenshot("runs")


def test_the_runs_table_fits_the_screen_with_every_metric_in_view(screen, ui):
    screen.get(ui)
    width = screen.execute_script("return document.documentElement.clientWidth")
    assert width == SCREEN[0]
    assert screen.execute_script("return document.documentElement.scrollWidth") <= width
    perplexity = screen.find_element("css selector", '#runs th[data-metric="perplexity"]')
    box = screen.execute_script("return arguments[0].getBoundingClientRect().toJSON()", perplexity)
    assert box["width"] > 0 and box["right"] <= width


def test_compare_refuses_to_rank_runs_scored_on_different_test_sets(screen, ui, screenshot):
    screen.get(f"{ui}/compare?runs=sms-spam-demo,sms-spam-30steps")
    notice = screen.find_element("css selector", "#compare-test-sets")
    assert notice.text == ("These runs were scored on different test sets (1,000 rows vs 80 rows): their metrics "
                           "are not comparable.")
    assert notice.get_attribute("data-comparable") == "false"
    assert screen.find_elements("css selector", "#compare-ranking, .compare-ranking") == []
    cells = [cell.text for cell in screen.find_elements("css selector", "tr.compare-test-set td")]
    assert cells[0].startswith("1,000 rows (test set ") and cells[1].startswith("80 rows (test set ")
    verdicts = [cell.get_attribute("data-verdict") for cell in screen.find_elements("css selector",
                                                                                   "tr.compare-verdict td")]
    assert verdicts == ["mixed", "degenerate"]
    assert "Beats TF-IDF + logistic regression" in screen.find_element("css selector", "tr.compare-verdict td").text
    screenshot("compare-apart")
    # The same 1,000 rows in another order: one test set, ranked.
    screen.get(f"{ui}/compare?runs=sms-spam-demo-lr-2e-4-alpha-64,sms-spam-demo")
    assert screen.find_element("css selector", "#compare-test-sets").get_attribute("data-comparable") == "true"
    ranked = [item.get_attribute("data-run") for item in screen.find_elements("css selector", ".compare-ranking li")]
    assert ranked == ["sms-spam-demo", "sms-spam-demo-lr-2e-4-alpha-64"]


def test_token_mode_without_the_cookie_shows_a_page_that_says_how_to_open_it(start_browser, serve_ui, people_runs):
    url = serve_ui(UiSettings(runs_dir=people_runs, token="s3cret"))
    browser = start_browser()
    browser.get(f"{url}/compare?runs=sms-spam-demo,sms-spam-30steps")
    page = browser.find_element("css selector", "#token-needed").text
    assert "Open the link that tunesmith ui printed" in page and "?token=" in page and "s3cret" not in page
    assert "{" not in browser.find_element("css selector", "body").text  # not a JSON blob
    browser.get(f"{url}/?token=wrong")
    assert "That token is not this UI's token." in browser.find_element("css selector", "#token-needed").text
    api = httpx.get(f"{url}/api/runs", headers={"Accept": "text/html"})
    assert api.status_code == 401 and "needs its token" in api.json()["error"]  # the API keeps JSON
    browser.get(f"{url}/?token=s3cret")
    assert rows_of(browser)  # the link still opens the UI


def test_compare_draws_losses_from_about_9_down_on_a_log_axis(screen, ui):
    screen.get(f"{ui}/compare?runs=sms-spam-demo-lr-2e-4-alpha-64,sms-spam-demo")
    chart = screen.find_element("css selector", "#loss-chart")
    WebDriverWait(screen, 10).until(lambda driver: chart.get_attribute("data-lines") == "2")
    assert chart.get_attribute("data-scale") == "log"
