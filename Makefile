# xrcell: `make demo` runs the demo, `make test` runs the tests; each does its own set-up, idempotently.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_PACKAGES := libusb-1.0-0 libgl1 libglib2.0-0
TEST_SYSTEM_PACKAGES := chromium fonts-dejavu-core python3-gi gir1.2-gst-rtsp-server-1.0

.PHONY: demo test setup setup-test clean

demo: setup
	$(BIN)/xrcell demo

test: setup-test
	$(BIN)/python -m pytest -p no:cacheprovider

setup: $(VENV)/.system $(VENV)/.installed node_modules/.installed $(VENV)/.models data/pose2sim/.complete

setup-test: setup $(VENV)/.system-test

$(VENV)/.system: scripts/system-deps.sh
	scripts/system-deps.sh $(SYSTEM_PACKAGES)
	@mkdir -p $(VENV) && touch $@

$(VENV)/.system-test: scripts/system-deps.sh Makefile
	scripts/system-deps.sh $(TEST_SYSTEM_PACKAGES)
	@mkdir -p $(VENV) && touch $@

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "xrcell: needs $(PYTHON) (set PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VENV)/.models: $(VENV)/.installed node_modules/.installed
	$(BIN)/xrcell models install
	@touch $@

data/pose2sim/.complete: $(VENV)/.installed
	$(BIN)/xrcell samples fetch

clean:
	rm -rf $(VENV) node_modules data
