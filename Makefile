# Two commands do all set-up: `make demo` and `make test`. Each creates .venv (Python 3.11+)
# and installs the project there first if needed; `make test` also installs Debian's chromium,
# chromium-driver, linuxcnc-uspace and mosquitto when missing (as root: .ci/system-packages), roslibjs,
# node-opcua-client and Eclipse Tahu's sparkplug-payload with mqtt.js (npm) for the independent
# rosbridge, OPC UA and Sparkplug B client tests, OctoPrint (its own virtualenv, .cache/octoprint) for
# the real-printer tests, and fetches roslibpy's own test suite (its sdist) to run against the twin's
# rosbridge endpoint. `make test` checks the import contracts (pyproject.toml) first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
JS_STAMP := tests/js/node_modules/.installed
# roslibpy's own test suite (its released sdist, the installed version) runs against the twin's endpoint
ROSLIBPY_SUITE := .cache/roslibpy/.downloaded

# the wheel, built once per `make test`: the import contracts run on its layout, the partner
# check installs it (nothing from the source tree)
WHEEL_DIR := .cache/wheel
LINT_SITE := .cache/lint
PARTNER_VENV := .cache/partner/venv
# a real OctoPrint with its Virtual Printer for the machine tests, in a virtualenv of its own (its pins
# may clash with ours)
OCTOPRINT_VERSION := 1.11.8
OCTOPRINT_STAMP := .cache/octoprint/venv/.installed

.PHONY: demo check test wheel lint partner clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	# byte-compiled once here: an editable install has no .pyc, and where PYTHONDONTWRITEBYTECODE is
	# set every twin and cell process would compile the whole stack again as it starts
	$(VENV)/bin/python -m compileall -q cellctl twin drivers skills >/dev/null
	touch $(STAMP)

$(JS_STAMP): tests/js/package.json
	npm install --prefix tests/js --no-audit --no-fund --no-package-lock --loglevel=error
	touch $(JS_STAMP)

$(ROSLIBPY_SUITE): $(STAMP)
	rm -rf .cache/roslibpy && mkdir -p .cache/roslibpy
	$(VENV)/bin/python -m pip download --quiet --no-deps --no-binary :all: --dest .cache/roslibpy \
		"roslibpy==$$($(VENV)/bin/python -c 'import roslibpy; print(roslibpy.__version__)')"
	touch $(ROSLIBPY_SUITE)

$(OCTOPRINT_STAMP):
	rm -rf .cache/octoprint/venv
	$(PYTHON) -m venv .cache/octoprint/venv
	.cache/octoprint/venv/bin/python -m pip install --quiet "octoprint==$(OCTOPRINT_VERSION)"
	touch $(OCTOPRINT_STAMP)

demo: $(STAMP)
	$(VENV)/bin/cellctl demo

# the fast lane: every test that starts no process (a started one fails the test), with coverage by module
check: $(STAMP)
	CELLCTL_NO_PROCESSES=1 $(VENV)/bin/python -m pytest -m "not process" -p no:cacheprovider \
		--cov=cellctl --cov-report=term:skip-covered

# everything: in parallel (pytest-xdist, a test file per worker at a time), then the `serial` tests
# alone (they run parallel workers of their own); the evidence lines the tests write (campaign
# figures, chaos summaries) are printed after the run
TEST_WORKERS ?= 3
EVIDENCE := .cache/ci-evidence.log

test: $(STAMP) $(JS_STAMP) $(ROSLIBPY_SUITE) $(OCTOPRINT_STAMP)
	.ci/system-packages
	$(MAKE) lint
	mkdir -p .cache && rm -f $(EVIDENCE)
	CELLCTL_CI_LOG=$(CURDIR)/$(EVIDENCE) $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile \
		-m "not serial"; status=$$?; \
	CELLCTL_CI_LOG=$(CURDIR)/$(EVIDENCE) $(VENV)/bin/python -m pytest -m serial -p no:cacheprovider \
		|| status=1; echo "== evidence =="; cat $(EVIDENCE) 2>/dev/null; exit $$status
	$(MAKE) partner

wheel: $(STAMP)
	rm -rf $(WHEEL_DIR) build
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEEL_DIR) .
	rm -rf build

# import-linter walks the installed package: the wheel unpacked, linted from inside it
lint: wheel
	rm -rf $(LINT_SITE) && $(VENV)/bin/python -m zipfile -e $(WHEEL_DIR)/cellctl-*.whl $(LINT_SITE)
	$(VENV)/bin/python -m tests.helpers.installed_layout $(LINT_SITE)
	cd $(LINT_SITE) && ../../$(VENV)/bin/lint-imports ../../pyproject.toml

partner: wheel
	rm -rf .cache/partner
	$(PYTHON) -m venv $(PARTNER_VENV)
	$(PARTNER_VENV)/bin/python -m pip install --quiet $(WHEEL_DIR)/cellctl-*.whl './examples/partner[test]'
	rm -rf examples/partner/build
	cd examples/partner && ../../$(PARTNER_VENV)/bin/pytest -p no:cacheprovider
	mkdir -p .cache/partner/demo && cd .cache/partner/demo && ../venv/bin/cellctl demo --parts 1

clean:
	rm -rf $(VENV) *.egg-info tests/js/node_modules .cache
