"""Take the web UI's screenshots for the manual (docs/images/ui-*.png) from a running `tunesmith ui`.

The runs folder should hold a real run of the demo with a blind review and a labeling queue, and a second run to
compare it with (docs/development.md, "Screenshots", gives the commands); without a labeling queue the labeling
page is left out. Needs Selenium (the `dev` extra) and Debian's
`chromium` and `chromium-driver`:

    python docs/screenshots.py --url http://127.0.0.1:7861 --run sms-spam-demo --other sms-spam-short

The playground loads the run's model and its base in the UI's process and streams both answers: on a CPU that
takes a minute or so the first time.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

IMAGES = Path(__file__).resolve().parent / "images"
WINDOW = (1366, 900)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  f"--window-size={WINDOW[0]},{WINDOW[1]}")
PLAYGROUND_PROMPT = "WINNER!! You have been selected for a free cruise. Call 09061701461 now to claim."


def start_browser() -> webdriver.Chrome:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    # The page itself is WINDOW: the window around it is that much larger by its frame.
    frame = browser.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
    browser.set_window_size(WINDOW[0] + frame[0], WINDOW[1] + frame[1])
    return browser


def wait_for(browser, condition, what: str, seconds: float):
    waiting = WebDriverWait(browser, seconds, poll_frequency=0.2,
                            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    return waiting.until(lambda driver: condition(driver), message=f"waited {seconds:g} s for {what}")


def css(browser, selector: str):
    return browser.find_element(By.CSS_SELECTOR, selector)


def save(browser, name: str, out: Path) -> None:
    path = out / f"ui-{name}.png"
    browser.save_screenshot(str(path))
    print(f"wrote {path}")


def runs_table(browser, url: str, out: Path) -> None:
    browser.get(url)
    wait_for(browser, lambda driver: driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr"), "the runs table", 20)
    save(browser, "runs", out)


def run_page(browser, url: str, run: str, out: Path) -> None:
    browser.get(f"{url}/runs/{run}")
    wait_for(browser, lambda driver: int(css(driver, "#loss-chart").get_attribute("data-points") or 0) > 0,
             "the curves", 20)
    save(browser, "run", out)


def compare_page(browser, url: str, runs: list[str], out: Path) -> None:
    browser.get(f"{url}/compare?runs={','.join(runs)}")
    wait_for(browser, lambda driver: css(driver, "#loss-chart").get_attribute("data-lines") == str(len(runs)),
             "a curve per run", 20)
    save(browser, "compare", out)


def playground(browser, url: str, run: str, out: Path, load_seconds: float) -> None:
    browser.get(f"{url}/playground?run={run}")
    wait_for(browser, lambda driver: css(driver, "#playground").get_attribute("data-ready") == "true",
             "the models to load", load_seconds)
    css(browser, "#chat-input").send_keys(PLAYGROUND_PROMPT + "\n")
    for pane in ("tuned", "base"):
        wait_for(browser, lambda driver: driver.find_element(
            By.CSS_SELECTOR, f"#pane-{pane} .turn.assistant[data-state='done']"), f"the {pane} answer", load_seconds)
    save(browser, "playground", out)


def review_item(browser, url: str, run: str, out: Path) -> None:
    browser.get(f"{url}/review/{run}")
    css(browser, "#reviewers a").click()  # the first reviewer's queue
    wait_for(browser, lambda driver: css(driver, "#review").get_attribute("data-ready") == "true",
             "the first item", 20)
    save(browser, "review", out)


def labeling(browser, url: str, run: str, out: Path) -> None:
    browser.get(f"{url}/label/{run}")
    if browser.find_elements(By.CSS_SELECTOR, "#no-queues"):
        print(f"no labeling page: {run} has no labeling queue (tunesmith label create)")
        return
    css(browser, "#queues a").click()  # the first queue
    wait_for(browser, lambda driver: driver.find_elements(By.CSS_SELECTOR, "#annotator-name"), "the page", 20)
    # The name lives in the browser (localStorage): asked once, then every visit goes straight to the next item.
    if css(browser, "#annotator-name").is_displayed():
        css(browser, "#annotator-name").send_keys("ann\n")
    wait_for(browser, lambda driver: css(driver, "#label").get_attribute("data-ready") == "true"
             and css(driver, "#label").get_attribute("data-stats-version"), "the item and the stats", 20)
    save(browser, "label", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="where `tunesmith ui` listens")
    parser.add_argument("--run", required=True, help="the demo's run: its page, playground, review and labeling")
    parser.add_argument("--other", required=True, help="a second run to compare with")
    parser.add_argument("--out", type=Path, default=IMAGES, help="folder for the PNG files (default: docs/images)")
    parser.add_argument("--load-seconds", type=float, default=600, help="how long the playground may take")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    url = args.url.rstrip("/")
    browser = start_browser()
    try:
        runs_table(browser, url, args.out)
        run_page(browser, url, args.run, args.out)
        compare_page(browser, url, [args.run, args.other], args.out)
        playground(browser, url, args.run, args.out, args.load_seconds)
        review_item(browser, url, args.run, args.out)
        labeling(browser, url, args.run, args.out)
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
