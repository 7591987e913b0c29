.PHONY: run demo test bench
run:            ## set up and run the server (SQLite + ./data)
	scripts/run.sh serve
demo:           ## set up, start a server with demo data and record calls
	scripts/run.sh demo
test:           ## install test peers and dependencies, run ruff, mypy and pytest
	scripts/test.sh
bench:
	scripts/setup.sh --test && .venv/bin/python -m bench
