# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install, seed the demo workspace, serve on http://127.0.0.1:8000/
#   make test  - create .venv, install, run the test suite (including the golden evals)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export COPILOT_DATA_DIR ?= $(CURDIR)/data
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install run demo serve test test-fast test-servers browser bench clean

install: $(STAMP)

# torch first, pinned: it resolves to the local CPU wheel instead of a multi-GB CUDA build. llama-cpp-python is built
# from source for a portable CPU baseline (scripts/install_llama.sh says why), then one token is generated in a child
# process: a build that crashes on this CPU fails the install with one line, not the first request.
$(STAMP): pyproject.toml scripts/install_llama.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	bash scripts/install_llama.sh $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	$(BIN)/python -m copilot.gateway.buildcheck
	touch $(STAMP)

demo: install
	$(BIN)/copilot demo --if-missing

run: demo
	$(BIN)/copilot serve

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The store, retrieval and API tests against PostgreSQL and a chromadb server (installs PostgreSQL if missing).
test-servers: install
	bash .ci/servers.sh

# Debian's chromium for the browser tests (Playwright drives it through executable_path; nothing is downloaded).
browser:
	command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

bench: install
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) data build *.egg-info
