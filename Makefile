# make demo  : set up .venv, then run every model (popularity, the six autoencoders, RecVAE,
#              EASE, EDLAE, DLAE, WMF, iALS, SLIM, LightFM, the itemknn plugin) on the built-in
#              synthetic data and write a report (about 5 minutes on 2 cores)
# make test  : set up .venv, then run the test suite
# A GPU user picks their own torch build: make install TORCH=torch  (or TORCH="torch==2.5.1")
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m benchmark run --models all --dataset synthetic

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check benchmark tests models benchmarks

clean:
	rm -rf $(VENV) results reports
