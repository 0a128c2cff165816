# The doors into the project: `make run`, `make test`, `make lint`, `make bench`.
# Each target creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
# apt-get never asks questions (CI has no terminal).
export DEBIAN_FRONTEND := noninteractive
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# What `make test` runs a second time on the pure-Python core: the suites that reach
# the compiled modules (the sans-IO protocols, the streams, io.py; the build's own
# tests), end to end on the asyncio worker class alone (io.py serves asyncio and
# uvloop alike; the trio I/O layer is not compiled) and without HTTP/3, which has no
# compiled module of its own.
PURE_TESTS ?= tests/worker tests/shared/test_compiled.py tests/e2e --worker-classes=asyncio \
	--ignore=tests/e2e/test_http3.py --ignore=tests/e2e/test_http3_workers.py \
	--ignore=tests/e2e/test_browser_h3.py

.PHONY: run test tools lint typecheck pytest pytest-processes pytest-serving pytest-pure compile bench docs site clean

# The editable install builds the compiled core in place (see setup.py); setuptools
# and mypy in the venv let `make compile` rebuild it without a new build environment.
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/python -m pip install --quiet -e '.[uvloop,h3,test,docs]'
	touch $(STAMP)

# Rebuild the compiled core in place when one of its sources changed since it was
# built: until then the package runs that source as Python (and says so at start-up).
compile: $(STAMP)
	@$(BIN)/python -c 'import hypercorn.shared.compiled as c; raise SystemExit(c.needs_build())' || \
		$(BIN)/python setup.py --quiet build_ext --inplace

run: compile
	$(BIN)/hypercorn --bind $(HOST):$(PORT) --access-logfile - examples/demo.py:app

lint: $(STAMP)
	$(BIN)/ruff check setup.py src tests examples benchmarks docs/hooks
	$(BIN)/ruff format --check setup.py src tests examples benchmarks docs/hooks

typecheck: $(STAMP)
	$(BIN)/mypy

# Everything with the compiled core, then the serving path again as pure Python.
pytest: compile
	$(BIN)/python -m pytest --core=compiled $(PYTEST_ARGS)

PROCESS_SUITES := tests/supervisor tests/daemon tests/fleet

pytest-processes: compile
	$(BIN)/python -m pytest --core=compiled $(PROCESS_SUITES) $(PYTEST_ARGS)

pytest-serving: compile
	$(BIN)/python -m pytest --core=compiled $(PROCESS_SUITES:%=--ignore=%) $(PYTEST_ARGS)

pytest-pure: $(STAMP)
	HYPERCORN_NO_EXTENSIONS=1 $(BIN)/python -m pytest --core=pure $(PURE_TESTS) $(PYTEST_ARGS)

# System tools the tests drive (curl, nghttp/h2load); installed from Debian when missing.
# A C compiler and Python's headers build the compiled core.
tools:
	@command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }
	@$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || \
		{ apt-get update -qq && apt-get install -y -qq python3-dev; }
	@command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
	@# ip (network namespaces for tests/fleet)
	@{ command -v ip || test -x /usr/sbin/ip; } >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null && \
	 { command -v haproxy || test -x /usr/sbin/haproxy; } >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq nginx haproxy; }
	@command -v h2load >/dev/null && command -v nghttp >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq nghttp2-client; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@# npm only when absent: a machine's own Node.js may already ship it (and conflict with Debian's).
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	@test -d .tools/node/node_modules/playwright-core || \
		{ mkdir -p .tools/node && cd .tools/node && { test -f package.json || npm init -y >/dev/null; } && \
		  npm install --no-audit --no-fund --silent playwright-core; }

# The compiled pass in two halves (the suites that start masters, and the rest), then
# the pure pass, two at a time: most of a test's time is waiting on servers and
# clients, not CPU. Each part's output is printed whole when it ends.
test: tools lint typecheck site compile
	$(MAKE) --no-print-directory -j2 --output-sync=target \
		pytest-processes pytest-serving pytest-pure

# The user guide: `make docs` regenerates docs/settings.md from the settings table,
# then builds the site. `make site` (what `make test` runs) only builds it, so that
# a stale docs/settings.md still fails tests/test_settings_doc.py. MkDocs runs in
# strict mode (a broken link or a missing snippet fails) into build/site, and
# Graphviz draws the diagrams.
docs: $(STAMP)
	$(BIN)/python -m hypercorn.shared.settings_doc > docs/settings.md
	$(MAKE) --no-print-directory site

site: $(STAMP)
	@command -v dot >/dev/null || { apt-get update -qq && apt-get install -y -qq graphviz; }
	$(BIN)/mkdocs build --strict --quiet

# The peers are installed in their own venvs under benchmarks/.venvs/ on first use.
# BENCH_ARGS=--quick for a run of a few minutes; see benchmarks/run.py --help.
bench: compile
	@command -v wrk >/dev/null && command -v h2load >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nghttp2-client; }
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build src/*.egg-info
	find src -name '*.so' -delete
	rm -f src/hypercorn/shared/compiled*.txt
