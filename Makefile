# The two commands of README: `make quickstart` and `make test`.
# Each creates .venv when missing and installs the project into it first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline

.PHONY: install quickstart test lint docs clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/mtlscene fit --config configs/quickstart.yaml

# Two xdist workers: most tests are small single-threaded work or wait on subprocesses.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check mtlscene tests benchmarks
	$(BIN)/ruff format --check mtlscene tests benchmarks

# The documentation site (mkdocs.yml) into site/; strict, as tests/test_docs.py builds it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean-data:
	rm -rf data/synthetic_cityscapes runs
