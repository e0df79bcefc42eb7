"""The playground in a headless Chromium (1366x900) on the tiny fixture runs: a classification run answers each
message alone by default (the same ham message gets the same answer alone and right after a spam message), with a
visible toggle to keep the history; each pane is titled with its model's name; and a slow pane (the base, held
here) does not hold the other: Send stays open and the tuned pane answers the next question meanwhile.

Without Chromium the tests skip, unless ``TUNESMITH_REQUIRE_BROWSER`` is set (tests/ui/conftest.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tunesmith.config.vocabulary import BASE_MODEL
from tunesmith.ui import UiSettings, playground

WAIT_S = 30
SPAM = "WINNER!! Claim your free prize now: text WIN to 80086"
HAM = "Are we still on for lunch tomorrow?"


@pytest.fixture(scope="module")
def ui(serve_ui, runs_dir) -> str:
    return serve_ui(UiSettings(runs_dir=runs_dir, max_tokens=8))


@pytest.fixture(scope="module")
def page(browser, ui):
    """``page() -> browser``: the playground of ``spam-done`` opened afresh (an empty conversation), loaded."""
    browser.set_window_size(1366, 900)

    def open_playground():
        browser.get(f"{ui}/playground?run=spam-done")
        wait_for(browser, lambda driver: css(driver, "#playground").get_attribute("data-ready") == "true",
                 "the model to load")
        return browser

    return open_playground


def wait_for(browser, condition, what: str):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(browser, WAIT_S, poll_frequency=0.05,
                            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    return waiting.until(lambda driver: condition(driver), message=f"waited for {what}")


def css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def answers(browser, side: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, f"#pane-{side} .turn.assistant")


def send(browser, text: str) -> None:
    css(browser, "#chat-input").send_keys(text)
    css(browser, "#send").click()


def answered(browser, side: str, count: int):
    """The pane's ``count``-th answer, once it is done."""
    def done(driver):
        shown = answers(driver, side)
        return len(shown) >= count and shown[count - 1].get_attribute("data-state") == "done" and shown[count - 1]
    return wait_for(browser, done, f"answer {count} of the {side} pane")


def test_a_classifier_answers_the_ham_message_after_a_spam_one_as_it_does_alone(page):
    browser = page()
    toggle = css(browser, "#playground-history")
    assert toggle.is_displayed() and not toggle.is_selected()  # single-turn: the classification run's default
    assert css(browser, "#playground").get_attribute("data-mode") == "single-turn"
    assert "answered alone" in css(browser, "#playground-history-hint").text
    send(browser, HAM)
    alone = {side: answered(browser, side, 1) for side in ("tuned", "base")}
    alone = {side: (answer.text, answer.get_attribute("data-prompt-tokens")) for side, answer in alone.items()}
    assert all(text.strip() for text, _ in alone.values())

    browser = page()  # a fresh conversation: the spam message first, then the same ham message
    send(browser, SPAM)
    for side in ("tuned", "base"):
        answered(browser, side, 1)
    send(browser, HAM)
    for side in ("tuned", "base"):
        after = answered(browser, side, 2)
        assert (after.text, after.get_attribute("data-prompt-tokens")) == alone[side]
        assert "this message alone" in after.get_attribute("title")

    # Keep the history: the hint says the earlier turns are now in the prompt, and they are.
    css(browser, "#playground-history").click()
    assert css(browser, "#playground").get_attribute("data-mode") == "multi-turn"
    assert "earlier turns are in the prompt" in css(browser, "#playground-history-hint").text
    send(browser, HAM)
    kept = answered(browser, "tuned", 3)
    assert int(kept.get_attribute("data-prompt-tokens")) > int(alone["tuned"][1])


def test_each_pane_is_titled_with_its_model(page, chatty_dir):
    browser = page()
    assert css(browser, "#pane-tuned .model-name").text == "spam-done"
    assert css(browser, "#pane-tuned .playground-model-detail").text == f"tuned: LoRA adapter on {chatty_dir.name}"
    assert css(browser, "#pane-base .model-name").text == chatty_dir.name
    assert css(browser, "#pane-base .playground-model-detail").text.startswith("base: ")
    assert "base: base" not in css(browser, ".panes").text


@pytest.fixture
def held_base(monkeypatch):
    """The base pane's answers wait until ``held_base.set()`` (the tuned pane's answer as usual): a base that is
    slow to answer, on demand."""
    release = threading.Event()
    answer = playground._answer_events

    async def held(pane, prompt_ids, sampling):
        if pane.model.name == BASE_MODEL:
            while not release.is_set():
                await asyncio.sleep(0.02)
        async for event in answer(pane, prompt_ids, sampling):
            yield event

    monkeypatch.setattr(playground, "_answer_events", held)
    yield release
    release.set()


def test_send_is_open_for_the_tuned_pane_while_the_base_still_answers(page, held_base, screenshot):
    browser = page()
    send(browser, "first question")
    answered(browser, "tuned", 1)
    assert answers(browser, "base")[0].get_attribute("data-state") == "streaming"
    assert css(browser, "#send").is_enabled() and css(browser, "#chat-input").is_enabled()
    send(browser, "second question")
    answered(browser, "tuned", 2)  # the tuned pane answered again, the base still on the first question
    assert [answer.get_attribute("data-state") for answer in answers(browser, "base")] == ["streaming", "queued"]
    assert css(browser, "#pane-base .playground-pane-state").text == "answering… (1 waiting)"
    assert css(browser, "#pane-tuned .playground-pane-state").text == ""
    screenshot("playground-base-answering")
    held_base.set()
    answered(browser, "base", 2)
    assert css(browser, "#pane-base .playground-pane-state").text == ""


@pytest.fixture(scope="module")
def screenshot(browser, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return lambda name: browser.save_screenshot(str(folder / f"ui-{name}.png"))
