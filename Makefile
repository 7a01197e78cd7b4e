# Two commands do all set-up: `make demo` and `make test`. Each creates .venv (Python 3.11+)
# and installs the project there first if needed; `make test` also installs roslibjs (npm) for the
# independent rosbridge-client test. `make test` checks the import contracts (pyproject.toml) first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
JS_STAMP := tests/js/node_modules/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(JS_STAMP): tests/js/package.json
	npm install --prefix tests/js --no-audit --no-fund --no-package-lock --loglevel=error
	touch $(JS_STAMP)

demo: $(STAMP)
	$(VENV)/bin/cellctl demo

test: $(STAMP) $(JS_STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) *.egg-info tests/js/node_modules
