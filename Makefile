# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean system-packages

install: $(STAMP)

# Re-runs only when the dependency declarations change, so a second `make install` is instant.
$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	# Upstream lava declares Python <3.11 and pins torch<2.4: take the code, not the pins.
	$(PIP) install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0
	$(PIP) install -e '.[dev]'
	# neurobench 2.3.0 checks our NeuroBench counts in the tests (development only, never imported by the
	# package). Its metrics need only torch, snntorch, numpy and tqdm; its declared requirements would
	# pull torchaudio, tonic and numba (and another torch), so: --no-deps.
	$(PIP) install --no-deps neurobench==2.3.0
	@# nvidia-ml-py (zeus's NVML bindings) is pure Python, not a CUDA library
	@! $(PY) -m pip list 2>/dev/null | grep -iE '^(nvidia-|cuda-)' | grep -viE '^nvidia-ml-py ' || { echo "CUDA packages found in $(VENV)"; exit 1; }
	touch $(STAMP)

# espeak-ng and sox make the synthetic keyword-spotting dataset; chromium and chromium-driver run the
# browser test of report.html. Debian packages.
system-packages:
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q espeak-ng sox >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q espeak-ng sox >/dev/null)) || \
	     echo "warning: could not install espeak-ng and sox; synth-kws will be unavailable"; \
	  else echo "warning: espeak-ng/sox missing; install them for synth-kws (apt-get install espeak-ng sox)"; fi; \
	fi
	@# chromium + chromium-driver: the test suite opens report.html in a real headless browser (Selenium)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)) || \
	     echo "warning: could not install chromium and chromium-driver; the browser test of report.html will skip"; \
	  else echo "warning: chromium/chromedriver missing; install them for the report.html browser test (apt-get install chromium chromium-driver)"; fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/lmu2neuro demo -o runs/demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs build *.egg-info
