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
	.venv/bin/mypy detectors driftwarden/events.py

bench: bootstrap
	.venv/bin/python -m bench
