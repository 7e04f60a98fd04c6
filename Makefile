# The newcomer's commands. Each installs what it needs first.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed

.PHONY: run test lint format bench bench-quick install clean

run: $(STAMP)  ## Run web + worker + beat on SQLite with the offline agent
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py demo_setup --url http://$${HOST:-127.0.0.1}:$${PORT:-8000}/
	bin/run-embedded

test: $(STAMP)  ## Run the whole test suite (SQLite; set DATABASE_URL/REDIS_URL for PostgreSQL/Redis)
	bin/install-browser
	.venv/bin/pytest

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: $(STAMP)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: $(STAMP)  ## Full benchmarks; results in bench/results/
	$(PY) -m bench

bench-quick: $(STAMP)  ## Benchmarks in under two minutes
	$(PY) -m bench --quick

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -d .venv || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $(STAMP)

clean:
	rm -rf .venv var
