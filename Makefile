PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/mist: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/mist

install: $(BIN)/mist

demo: install
	$(BIN)/mist demo --output-dir outputs/demo

test: install
	$(BIN)/python -m pytest tests -q

bench: install
	$(BIN)/python benchmarks/benchmark_model.py

clean:
	rm -rf $(VENV) outputs
