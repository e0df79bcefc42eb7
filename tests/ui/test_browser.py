"""The UI in a real headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium): the runs
table, live curves, compare, the playground streaming from the tiny model, and a blind review done with the
keyboard. One browser (`browser`, tests/ui/conftest.py) and one server for the module. Screenshots of each page
go to the session's temp folder (``<basetemp>/screenshots``), which CI keeps.

Without Chromium the tests skip, unless ``TUNESMITH_REQUIRE_BROWSER`` is set (`make test` sets it and installs
the packages), where a missing browser fails them."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from matplotlib.figure import Figure

from tunesmith.config import save_config, validate_config
from tunesmith.document import Document, Image, Section, Table, render_html
from tunesmith.document.figures import figure_png
from tunesmith.review import ReviewStore
from tunesmith.ui import UiSettings

WAIT_S = 20


@pytest.fixture(scope="module")
def ui(serve_ui, runs_dir, live_lock) -> str:
    return serve_ui(UiSettings(runs_dir=runs_dir, max_tokens=16))


@pytest.fixture(scope="module")
def screenshot(browser, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return lambda name: browser.save_screenshot(str(folder / f"ui-{name}.png"))


def wait_for(browser, condition, what: str):
    from selenium.common.exceptions import (
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # A page that reloads (the review after each judgment) drops its elements mid-check: check again.
    waiting = WebDriverWait(browser, WAIT_S, poll_frequency=0.1,
                            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                                JavascriptException))
    return waiting.until(lambda driver: condition(driver), message=f"waited for {what}")


def css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def test_runs_table_lists_every_run_with_its_status_and_compares_two(browser, ui, screenshot):
    browser.get(ui)
    rows = {row.get_attribute("data-run"): row for row in
            browser.find_elements("css selector", "#runs tbody tr")}
    statuses = {name: row.get_attribute("data-status") for name, row in rows.items()}
    assert statuses == {"sms-sweep-1/trials/trial-0000": "done", "sms-sweep-1/trials/trial-0001": "pruned",
                        "sms-sweep-1/trials/trial-0002": "failed",
                        "spam-done": "done", "spam-full": "stopped", "spam-live": "running",
                        "spam-lr-high": "done", "spam-stopped": "stopped"}
    done = rows["spam-done"].text
    assert "0.875" in done and "+0.375" in done and "lr=0.0002" in done and "r=4" in done
    screenshot("runs")
    for name in ("spam-done", "spam-lr-high"):
        rows[name].find_element("css selector", "input.pick").click()
    css(browser, "#compare").click()
    wait_for(browser, lambda driver: "/compare" in driver.current_url
             and driver.execute_script("return document.readyState") == "complete", "the compare page")
    differing = [row.get_attribute("data-key")
                 for row in browser.find_elements("css selector", "#config-diff tr[data-key]")]
    assert {"train.learning_rate", "lora.r", "lora.alpha"} <= set(differing)
    assert "model.name" not in differing and "method" not in differing
    assert css(browser, 'tr[data-metric="accuracy"]').text.split()[1:] == ["0.8750", "(+0.3750", "vs", "base)",
                                                                          "0.7500", "(+0.2500", "vs", "base)"]
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-lines") == "2", "two curves")
    screenshot("compare")


def _painted_pixels(browser, canvas_id: str) -> int:
    return browser.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;", canvas_id)


def test_run_page_draws_the_curves_and_follows_a_run_that_trains(browser, ui, runs_dir, screenshot):
    browser.get(f"{ui}/runs/spam-done")
    # 20 training steps and 4 validations (val_loss beside the loss, val_accuracy on its own chart)
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-points") == "24", "the curves")
    assert css(browser, "#loss-chart").get_attribute("data-lines") == "2"
    assert css(browser, "#val-chart").get_attribute("data-points") == "4"
    assert _painted_pixels(browser, "loss-chart") > 500
    assert "0.875" in css(browser, "#evaluation").text
    assert "classification" in css(browser, "#data-summary").text
    screenshot("run")
    browser.get(f"{ui}/runs/spam-live")
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-points") == "7", "6 steps, 1 val")
    with (runs_dir / "spam-live" / "metrics.jsonl").open("a") as metrics:
        metrics.write(json.dumps({"step": 7, "loss": 0.4}) + "\n" + json.dumps({"step": 8, "loss": 0.3}) + "\n")
        metrics.write('{"step": 9, "lo')  # a line still being written: skipped until it is whole
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-points") == "9",
             "the new steps, polled")
    assert "training" in css(browser, "#curve-note").text


def test_playground_streams_an_answer_into_both_panes(browser, ui, screenshot, chatty_dir):
    browser.get(f"{ui}/playground?run=spam-done")
    wait_for(browser, lambda driver: css(driver, "#playground").get_attribute("data-ready") == "true",
             "the model to load")
    assert css(browser, "#system-prompt").get_attribute("value") == "You sort messages."
    assert "im_start" in css(browser, "#chat-template").get_attribute("value")
    tokens = css(browser, "#max-tokens")
    tokens.clear()
    tokens.send_keys("8")
    css(browser, "#chat-input").send_keys("Is this spam: win a free prize now\n")
    for pane in ("tuned", "base"):
        answer = wait_for(browser, lambda driver: driver.find_element(
            "css selector", f"#pane-{pane} .turn.assistant[data-state='done']"), f"the {pane} answer")
        assert answer.text.strip() and 1 <= int(answer.get_attribute("data-tokens")) <= 8
    assert css(browser, "#pane-tuned .model-name").text == "spam-done"
    assert css(browser, "#pane-base .model-name").text == chatty_dir.name  # the base model's name
    screenshot("playground")


def test_review_with_the_keyboard_resumes_after_a_reload_and_maps_back_to_the_models(browser, ui, runs_dir,
                                                                                      screenshot, xss_answer,
                                                                                      at_review_item):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(f"{ui}/review/spam-done")
    css(browser, "#reviewers a").click()  # ann, the first reviewer
    wait_for(browser, at_review_item("1"), "ann's queue")
    # Item 1 is prompt 0, whose tuned answer is markup: it shows as written, and nothing in it runs.
    answers = [css(browser, f"#answer-{side} pre").text for side in "ab"]
    assert xss_answer in answers
    assert browser.execute_script("return window.__xss === undefined && !document.querySelector('.answer b')")
    screenshot("review")
    picked = []
    for expected_position in range(1, 6):
        assert css(browser, "#position").text == str(expected_position)
        side_a = css(browser, "#answer-a pre").text
        key = "1" if side_a == xss_answer or side_a.startswith("tuned") else "2"  # always pick the tuned model's answer
        picked.append(key)
        ActionChains(browser).send_keys(key).perform()
        wait_for(browser, at_review_item(str(expected_position + 1)), f"item {expected_position + 1}")
    browser.refresh()
    wait_for(browser, at_review_item("6"), "item 6 after the reload")
    assert "5 of 7 judged" in css(browser, "#progress-text").text
    with ReviewStore.open(runs_dir / "spam-done") as store:
        judgments = [j for j in store.judgments() if j.reviewer == "ann"]
    assert [j.verdict for j in judgments] == [{"1": "a", "2": "b"}[key] for key in picked]
    assert {j.winner for j in judgments} == {"tuned"}  # whichever side it was shown on
    assert set(picked) == {"1", "2"}  # the sides really were mixed
    ActionChains(browser).send_keys("u").perform()
    wait_for(browser, at_review_item("5"), "the undone item back")
    with ReviewStore.open(runs_dir / "spam-done") as store:
        assert store.progress("ann") == (4, 7)
    for position in ("5", "6"):
        css(browser, 'button[data-verdict="tie"]').click()
        wait_for(browser, at_review_item(str(int(position) + 1)), "the next item")
    css(browser, 'button[data-verdict="tie"]').click()
    wait_for(browser, lambda driver: driver.find_elements("css selector", "#done"), "the done page")


def _post(browser, path: str, body: dict, csrf: str | None) -> int:
    """The status of a POST sent from the page (with its cookies), with ``csrf`` as the header when given."""
    return browser.execute_async_script(
        "const [path, body, csrf, done] = arguments;"
        "const headers = {'Content-Type': 'application/json'}; if (csrf !== null) headers['X-CSRF-Token'] = csrf;"
        "fetch(path, {method: 'POST', headers, body: JSON.stringify(body)}).then((r) => done(r.status));",
        path, body, csrf)


def test_review_posts_need_the_csrf_token_and_get_clear_statuses(browser, ui):
    browser.get(f"{ui}/review/spam-done/bob")
    token = css(browser, 'meta[name="csrf-token"]').get_attribute("content")
    item = int(css(browser, "#review").get_attribute("data-item"))
    judgment = {"run": "spam-done", "reviewer": "bob", "item_id": item, "verdict": "tie"}
    assert _post(browser, "/api/review/judge", judgment, None) == 403
    assert _post(browser, "/api/review/judge", judgment, "forged") == 403
    assert _post(browser, "/api/review/judge", judgment, token) == 200
    assert _post(browser, "/api/review/judge", judgment, token) == 409  # judged already
    assert _post(browser, "/api/review/judge", {**judgment, "item_id": 999}, token) == 404
    assert _post(browser, "/api/review/judge", {**judgment, "reviewer": "zed"}, token) == 404
    assert _post(browser, "/api/review/judge", {**judgment, "verdict": "maybe"}, token) == 400
    assert _post(browser, "/api/review/undo", {"run": "spam-done", "reviewer": "bob"}, token) == 200
    assert _post(browser, "/api/review/undo", {"run": "spam-done", "reviewer": "bob"}, token) == 409


def test_with_a_token_pages_need_it_and_the_link_sets_a_cookie(browser, serve_ui, runs_dir):
    url = serve_ui(UiSettings(runs_dir=runs_dir, token="s3cret"))
    assert httpx.get(f"{url}/").status_code == 401
    assert httpx.get(f"{url}/api/runs").status_code == 401
    browser.delete_all_cookies()
    browser.get(f"{url}/runs/spam-done?token=s3cret")
    assert browser.current_url == f"{url}/runs/spam-done"  # the token left the address bar
    started = time.monotonic()
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-points") == "24",
             "the curves, fetched with the session cookie")
    assert time.monotonic() - started < WAIT_S


def test_the_pages_policy_refuses_inline_script_and_framing_by_other_sites(browser, ui, serving, csp_violations):
    browser.get(ui)
    # Markup that slipped into a page (as a model's answer would, were it not escaped) cannot run a script.
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
                           "document.body.appendChild(s);")
    assert browser.execute_script("return window.__inline === undefined")
    refused = wait_for(browser, csp_violations, "the refusal in the console")
    assert "inline script violates the following Content Security Policy directive 'default-src 'self''" in refused[0]
    # A page of another site cannot frame the UI (a verdict button under a decoy).
    site = FastAPI()
    site.get("/")(lambda: HTMLResponse(f"<iframe src='{ui}/'></iframe>"))
    with serving(site, "/") as other:
        browser.get(other)
        refused = wait_for(browser, csp_violations, "the framing refused")
    assert f"Framing '{ui}/' violates the following Content Security Policy directive: \"frame-ancestors 'none'\"" \
        in refused[0]


def test_a_run_report_shows_its_inline_styles_and_plots_under_its_policy(browser, serve_ui, tmp_path, chatty_dir):
    run = tmp_path / "runs" / "reported"
    run.mkdir(parents=True)
    save_config(validate_config({"model": {"name": str(chatty_dir)}, "data": {"train": "t.jsonl"}}),
                run / "config.yaml")
    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([1, 2, 3])
    document = Document("report", sections=[Section("results", [Table(["metric", "value"], [["accuracy", "0.9"]]),
                                                                Image("loss.png", figure_png(figure), "loss")])])
    (run / "report.html").write_text(render_html(document))
    url = serve_ui(UiSettings(runs_dir=tmp_path / "runs"))
    browser.get(f"{url}/runs/reported/report.html")
    wait_for(browser, lambda driver: driver.execute_script(
        "const img = document.querySelector('img'); return img.complete && img.naturalWidth > 0"), "the plot")
    assert browser.execute_script("return getComputedStyle(document.body).maxWidth") == "960px"  # the inline style
