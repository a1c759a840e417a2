# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create .venv/ when missing and reinstall only when the lock or pyproject changes.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK ?= requirements/cpu.lock
# GPU: `make setup-gpu` installs the lock without torch/fbgemm-gpu-cpu, then lets pip resolve
# these two (CUDA torch pulls its nvidia-* libraries). Override to match your CUDA version.
GPU_PACKAGES ?= torch==2.13.0 'fbgemm-gpu>=1.8,<1.9'
STAMP := $(VENV)/.recft-installed
# torchrec requires `fbgemm-gpu`; on CPU a metadata-only stand-in of that name (which requires
# fbgemm-gpu-cpu) satisfies it. No lock pins it: it is written here and installed by path.
STANDIN := requirements/fbgemm_gpu_standin.py
STANDIN_DIR := build/wheels-cpu
# pip on some machines prints a warning per missing local index folder; it is noise.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.jupyter/data
export IPYTHONDIR := $(CURDIR)/.jupyter/ipython
export MPLCONFIGDIR := $(CURDIR)/.jupyter/matplotlib

.PHONY: setup setup-gpu demo test test-slow test-all lab bench wheels clean-venv

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml $(STANDIN)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "recft: installing the pinned closure from $(LOCK) (no dependency resolution)"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r $(LOCK) 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps \
		"$$($(PY) $(STANDIN) $(STANDIN_DIR) --lock $(LOCK))" 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 | $(PIP_QUIET)
	$(PY) -m recft.env_check
	$(PY) -m ipykernel install --sys-prefix --name recft --display-name "Python (recft)" >/dev/null
	@touch $(STAMP)

setup-gpu:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-deps -r requirements/cpu-no-torch.lock 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install $(GPU_PACKAGES)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(PIP_QUIET)
	$(PY) -m recft.env_check
	@touch $(STAMP)

demo: setup
	$(PY) -m recft demo

test: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# includes tests/test_wheel_install.py: the built wheel in a fresh venv, offline
test-slow: setup
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: setup
	$(PY) benchmarks/run_all.py

# dist/recft-*.whl for every machine, dist/cpu/ the fbgemm-gpu stand-in for CPU installs
# (README "Installation details and GPUs"). build/lib is removed: setuptools would package
# stale copies of deleted modules from it.
wheels: setup
	rm -rf dist build/lib build/bdist.*
	$(PY) $(STANDIN) dist/cpu
	$(PY) -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w dist . \
		2>&1 | $(PIP_QUIET)
	@ls dist/*.whl

clean-venv:
	rm -rf $(VENV)
