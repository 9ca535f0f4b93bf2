# cvkit: two commands do all set-up on a fresh machine.
#   make demo   runs the main job (the flagship study on built-in data, on CPU)
#   make test   runs the whole test suite (the same command .ci/run calls)
# Both create or reuse the project virtual environment in $(VENV) and install into it
# with constraints.txt, so every install path gets the same versions.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cvkit-installed

.PHONY: install demo test readme prepare execute constraints clean-venv docs

$(STAMP): settings.ini setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps rapidocr facenet-pytorch  # real OCR/face weights; their metadata pins old torch/OpenCV
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cvkit demo

# The whole suite, in order: clean check, export sync check, README check, notebook tests, docs build, pytest.
test: $(STAMP)
	$(BIN)/python .ci/check_sync.py clean
	$(BIN)/python .ci/check_sync.py export
	$(BIN)/python .ci/readme.py --check
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing  # 2 notebooks at a time, 1 thread each: no oversubscription on 2 cores
	OMP_NUM_THREADS=1 $(BIN)/python .ci/docs.py  # the docs site (tests/test_docs.py browses it)
	$(BIN)/python .ci/pytest.py tests/

# What to run before every commit: export, readme, clean, then the test suite.
prepare: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/python .ci/readme.py
	$(BIN)/nbdev_clean
	$(MAKE) test

# Execute notebooks in place (outputs are committed; the docs show them). NB=path/to.ipynb for one.
execute: $(STAMP)
	$(BIN)/python .ci/execute_nbs.py $(NB)
	$(BIN)/nbdev_clean

# The docs site in site/: notebooks processed by nbdev, rendered with their saved outputs (mkdocs-material +
# mkdocs-jupyter), internal links and offline assets checked. Incremental (cache in _proc/); FORCE=1 rebuilds all.
docs: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python .ci/docs.py $(if $(FORCE),--force)

readme: $(STAMP)
	$(BIN)/python .ci/readme.py

# Re-pin constraints.txt from the current environment (after changing requirements).
constraints: $(STAMP)
	( echo "# Exact pins for every install path: pip install -c constraints.txt ..."; \
	  echo "# Regenerate after a dependency change: make constraints"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^cvkit' ) > constraints.txt.tmp && mv constraints.txt.tmp constraints.txt

clean-venv:
	rm -rf $(VENV)
