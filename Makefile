# The two commands of the README. Both install what is missing first (scripts/bootstrap.sh).
.PHONY: demo test bootstrap stack-up stack-down bench lint

demo: bootstrap
	.venv/bin/driftwarden demo

test: bootstrap
	.venv/bin/python -m pytest -q

bootstrap:
	@bash scripts/bootstrap.sh

stack-up: bootstrap
	.venv/bin/driftwarden stack up

stack-down:
	.venv/bin/driftwarden stack down

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy detectors driftwarden/contract/events.py

# Both benchmarks, each against its own baseline in the same run; results in bench/results/.
bench: bootstrap bench/.venv-evidently/.installed
	.venv/bin/python bench/bench_detectors.py
	.venv/bin/python bench/bench_stream.py

# Evidently is only compared against, so it lives in a venv of its own (0.7 breaks on pandas 3).
bench/.venv-evidently/.installed:
	python3.11 -m venv bench/.venv-evidently
	bench/.venv-evidently/bin/pip install -q "evidently>=0.7,<0.8" "pandas<3"
	touch $@
