"""The blind review in a real headless Chromium at 1366x900 (tests/ui/conftest.py): the review pages link nowhere
that de-blinds (no run page, no predictions.jsonl), and in reviewer-only mode the rest of the UI is closed; the
results read W–L–T with the win rate over decisive items (9–1 with 16 ties is 90%) and a small-sample note on
kappa; a stale tab's conflict says to reload; a verdict is confirmed.

The module builds runs of its own (the session's `runs_dir` is judged by other tests): ``sms-judged``, whose
review is judged already, and ``sms-review``, fresh, each test judging in the name of a reviewer of its own."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path
from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings

WAIT_S = 20
PROMPTS = 28
ANN = ["tuned"] * 9 + ["base"] + ["tie"] * 16 + ["both_bad"] * 2
"""ann's verdicts on sms-judged, item by item: 9 wins, 1 loss, 16 ties, 2 both bad."""
BOB = {11: "tie", 12: "both_bad", 13: "tie"}
"""bob's, on three of ann's ties: the outcomes stay as ann's (a 1-1 split of tie and both bad is a tie), and the
two disagree on item 12, so there are 3 shared items (too few for kappa) and one disagreement."""


def write_reviewed_run(root: Path, reviewers: dict[str, list[int]]) -> RunDir:
    """A finished run with predictions.jsonl, a report and a review of `PROMPTS` prompts, tuned vs base; each
    reviewer's queue holds the given prompt numbers, tuned shown as A on even ones."""
    run = RunDir(root)
    root.mkdir(parents=True)
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "sms.jsonl"}}), run.config_path)
    run.predictions.write_text(json.dumps({"location": "test.jsonl:1", "tuned_prediction": "spam"}) + "\n")
    run.report_html.write_text("<html><body>report</body></html>")
    prompts = [ReviewPrompt(f"test.jsonl:{n + 1}", None, f"Is message {n} spam?", None, None,
                            {"tuned": f"tuned answer {n}", "base": f"base answer {n}"}) for n in range(PROMPTS)]
    database_path(root).parent.mkdir()
    create_database(database_path(root), ReviewPlan(
        models=[("tuned", "tuned", None), ("base", "base", None)], prompts=prompts,
        items=[(n, "tuned", "base") for n in range(PROMPTS)],
        queues={reviewer: [(n, *(("tuned", "base") if n % 2 == 0 else ("base", "tuned"))) for n in numbers]
                for reviewer, numbers in reviewers.items()},
        rubric=[], show_reference=False))
    return run


def judge(store: ReviewStore, reviewer: str, item_id: int, better: str) -> None:
    _, model_a, model_b = next(entry for entry in store.queue(reviewer) if entry[0] == item_id)
    store.judge(reviewer, item_id, {model_a: "a", model_b: "b"}.get(better, better))


@pytest.fixture(scope="module")
def review_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("review-runs")
    judged = write_reviewed_run(root / "sms-judged", {"ann": list(range(PROMPTS)), "bob": [10, 11, 12]})
    with ReviewStore.open(judged.root) as store:
        for item_id, better in enumerate(ANN, start=1):
            judge(store, "ann", item_id, better)
        for item_id, better in BOB.items():
            judge(store, "bob", item_id, better)
    write_reviewed_run(root / "sms-review", {name: list(range(6)) for name in ("cy", "dee", "eve")})
    return root


@pytest.fixture(scope="module")
def ui(serve_ui, review_runs) -> str:
    return serve_ui(UiSettings(runs_dir=review_runs))


@pytest.fixture(scope="module")
def reviewer_ui(serve_ui, review_runs) -> str:
    return serve_ui(UiSettings(runs_dir=review_runs, reviewer_only=True))


@pytest.fixture(scope="module")
def window(browser):
    browser.set_window_size(1366, 900)
    return browser


def wait_for(browser, condition, what: str):
    from selenium.common.exceptions import JavascriptException, NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(browser, WAIT_S, poll_frequency=0.1,
                            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                                JavascriptException))
    return waiting.until(lambda driver: condition(driver), message=f"waited for {what}")


def css(browser, selector: str):
    return browser.find_element("css selector", selector)


def links(browser) -> list[str]:
    """Every link's target on the page, as written (not resolved)."""
    return browser.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))")


def de_blinding(hrefs: list[str]) -> list[str]:
    """The links that lead to a run's page or files, compare, or the model's answers."""
    return [href for href in hrefs if href.startswith(("/runs", "/compare", "/api/")) or "predictions" in href]


def test_review_pages_link_to_no_run_page_and_no_predictions(window, ui):
    for path in ("/review/", "/review/sms-review", "/review/sms-review/cy"):
        window.get(f"{ui}{path}")
        hrefs = links(window)
        assert hrefs and de_blinding(hrefs) == [], path
        assert "predictions" not in window.page_source and "win rate" not in window.page_source
    assert "/review/sms-review" in links(window)  # the reviewers page, from the item page
    window.get(f"{ui}/review/")
    assert [a.text for a in window.find_elements("css selector", "#reviews a")] == ["sms-judged", "sms-review"]


def test_reviewer_only_mode_serves_the_review_and_closes_everything_else(window, reviewer_ui, at_review_item):
    for path in ("/runs/sms-judged", "/runs/sms-judged/predictions.jsonl", "/runs/sms-judged/report.html",
                 "/compare?runs=sms-judged,sms-review", "/playground", "/playground?run=sms-judged", "/api/runs",
                 "/api/curves/sms-judged", "/label/sms-judged", "//runs/sms-judged"):
        answer = httpx.get(f"{reviewer_ui}{path}")
        assert answer.status_code == 403, path
        assert "reviewer-only mode" in answer.text and "tuned answer" not in answer.text
    assert httpx.post(f"{reviewer_ui}/api/playground/chat", json={}).status_code == 403
    home = httpx.get(f"{reviewer_ui}/?token=x")
    assert home.status_code == 303 and home.headers["location"] == "/review/?token=x"  # a token link still works
    window.get(reviewer_ui)
    wait_for(window, lambda driver: driver.current_url == f"{reviewer_ui}/review/", "the reviews list")
    assert links(window) == ["/review/", "/review/", "/review/sms-judged", "/review/sms-review"]
    css(window, '#reviews a[href="/review/sms-review"]').click()
    css(window, '#reviewers a[href="/review/sms-review/eve"]').click()
    wait_for(window, at_review_item("1"), "eve's first item")
    assert de_blinding(links(window)) == [] and "Runs" not in css(window, "nav").text
    css(window, 'button[data-verdict="tie"]').click()  # judging works in this mode
    wait_for(window, at_review_item("2"), "eve's second item")
    window.get(f"{reviewer_ui}/runs/sms-judged")
    assert "reviewer-only mode" in css(window, "#error-message").text
    assert de_blinding(links(window)) == []


def test_results_read_w_l_t_with_the_rate_over_decisive_items(window, ui):
    window.get(f"{ui}/runs/sms-judged")
    section = css(window, "#human-review").text
    assert "tuned against base: 9–1–16 (wins–losses–ties), 2 both bad; it wins 90% of the 10 decisive items " \
           "(95% CI 60%–98%)" in section
    row = window.execute_script(
        "return Array.from(document.querySelectorAll('#human-review table'))"
        "  .find(t => t.tHead && t.tHead.textContent.includes('W–L–T')).tBodies[0].rows[0].innerText")
    assert row.split() == ["base", "28", "9–1–16", "2", "90%", "[60%,", "98%]", "10", "0.0215"]
    assert "34.6%" not in section
    assert "on 3 shared items: too few to judge agreement" in section
    # The disagreement table: text left, the item number right.
    cell = window.execute_script(
        "const row = Array.from(document.querySelectorAll('#human-review table'))"
        "  .find(t => t.querySelector('caption') && t.querySelector('caption').textContent.includes('disagreement'))"
        "  .querySelector('tbody tr');"
        "return Array.from(row.cells).map(c => getComputedStyle(c).textAlign);")
    assert cell == ["left", "right", "left", "left"]


def test_a_verdict_is_confirmed_and_an_undo_too(window, ui, at_review_item):
    window.get(f"{ui}/review/sms-review/cy")
    wait_for(window, at_review_item("1"), "cy's first item")
    assert window.find_elements("css selector", "#review-saved") == []
    css(window, 'button[data-verdict="a"]').click()
    wait_for(window, at_review_item("2"), "cy's second item")
    assert css(window, "#review-saved").text == "Saved: A better (item 1)"
    window.find_element("tag name", "body").send_keys("4")
    wait_for(window, at_review_item("3"), "cy's third item")
    assert css(window, "#review-saved").text == "Saved: both bad (item 2)"
    window.find_element("tag name", "body").send_keys("u")
    wait_for(window, at_review_item("2"), "item 2 again")
    assert css(window, "#review-saved").text == "Undone: your verdict on item 2 is removed; judge it again below."


def test_a_stale_tabs_conflict_says_reload(window, ui, review_runs, at_review_item):
    window.get(f"{ui}/review/sms-review/dee")
    wait_for(window, at_review_item("1"), "dee's first item")
    item = int(css(window, "#review").get_attribute("data-item"))
    # Another tab judges the item this page shows.
    status = window.execute_async_script(
        "const [item, done] = arguments;"
        "postJson('/api/review/judge', {run: 'sms-review', reviewer: 'dee', item_id: item, verdict: 'tie'})"
        "  .then((r) => done(r.status));", item)
    assert status == 200
    assert not css(window, "#review-reload").is_displayed()
    css(window, 'button[data-verdict="b"]').click()
    error = wait_for(window, lambda driver: css(driver, "#review-error").text, "the conflict")
    assert error == "Item 1 was judged already, in another tab or window (reload the page: it shows where you stand)"
    assert "undo" not in error.lower()
    css(window, "#review-reload").click()
    wait_for(window, at_review_item("2"), "the next item after the reload")
    assert css(window, "#review-error").text == ""
    with ReviewStore.open(review_runs / "sms-review") as store:  # the other tab's verdict stands
        assert [judgment.verdict for judgment in store.judgments() if judgment.reviewer == "dee"] == ["tie"]
