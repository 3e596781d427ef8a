# The README's promise: `make demo` and `make test` on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/idds demo

test: install
	$(BIN)/python -m pytest -q

docs: install
	IDDS_WAREHOUSE=$${IDDS_WAREHOUSE:-data/warehouse.duckdb} DBT_PROFILES_DIR=. $(BIN)/dbt docs generate --target-path data/work/dbt-docs
	IDDS_WAREHOUSE=$${IDDS_WAREHOUSE:-data/warehouse.duckdb} DBT_PROFILES_DIR=. $(BIN)/dbt docs serve --target-path data/work/dbt-docs --port 8080

bench: install
	$(BIN)/python benchmarks/run_benchmarks.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf data target logs
