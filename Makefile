# Two entry points (README Quick start): `make demo` and `make test`.
# Both create .venv at the repo root on first use and reinstall when pyproject.toml changes, and fetch the
# package files the real photos come from (`make photos`; never fatal, nothing is installed system-wide).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INFERCAM_CACHE ?= $(HOME)/.cache/infercam
export INFERCAM_CACHE

.PHONY: demo test install photos clean

$(STAMP): pyproject.toml constraints.txt
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,crf]'
	touch $(STAMP)

install: $(STAMP)

photos: $(STAMP)
	@bash scripts/fetch_photos.sh "$(INFERCAM_CACHE)" $(BIN)/python

demo: $(STAMP) photos
	$(BIN)/infercam demo --out demo-out

test: $(STAMP) photos
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out
