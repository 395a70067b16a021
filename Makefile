# Quick start: `make demo` (install + launch the app) and `make test` (install + run the whole suite).
.PHONY: demo test lint format bench clean

demo:
	scripts/setup.sh
	.venv/bin/python -m app

test:
	scripts/setup.sh test
	.venv/bin/python -m ruff check .
	.venv/bin/python -m ruff format --check .
	.venv/bin/python -m pytest

lint:
	.venv/bin/python -m ruff check --fix .
	.venv/bin/python -m ruff format .

bench:
	.venv/bin/python -m bench.layers

clean:
	rm -rf .venv .pytest_cache .ruff_cache
