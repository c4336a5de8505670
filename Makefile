# Every target creates or reuses .venv; nothing is installed outside the project.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all check-wheel lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	bash scripts/redis.sh install >/dev/null || echo "redis-server could not be installed: the Redis index test will say so"
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	bash scripts/redis.sh install >/dev/null || echo "redis-server could not be installed: the Redis index test will say so"
	$(BIN)/python -m pytest -q -m ''

check-wheel:
	bash scripts/check_wheel.sh

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo_out
