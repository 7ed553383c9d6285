PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# TORCH: pip arguments for torch and torchvision installed before the project, when PyPI's CUDA builds (about 6.6 GB
# in the venv) are not wanted, e.g. make install TORCH="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
TORCH ?=

.PHONY: install demo test docs bench help-data clean

$(BIN)/mist: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH),$(BIN)/pip install --quiet $(TORCH))
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/mist

install: $(BIN)/mist

$(BIN)/mkdocs: $(BIN)/mist
	$(BIN)/pip install --quiet -e ".[test,docs]"
	touch $(BIN)/mkdocs

demo: install
	$(BIN)/mist demo --output-dir outputs/demo

test: install
	$(BIN)/python -m pytest tests -q

# The documentation site in site/; --strict: a broken link, a page outside the navigation or an unresolved
# docstring reference fails the build.
docs: $(BIN)/mkdocs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python benchmarks/benchmark_model.py

# training/cli/help_data.json: what `mist train|extract-features|demo --help` show without importing torch, read
# from the live classes; run after upgrading transformers or changing an option (tests/training/test_help.py fails
# until then).
help-data: install
	$(BIN)/python -c "from training.cli.arguments import write_help_data; write_help_data()"

clean:
	rm -rf $(VENV) outputs site
