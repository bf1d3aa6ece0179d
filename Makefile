# One-command set-up: `make test` and `make demo` create (or reuse) .venv and install everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch pair these machines carry on disk; on your machine `make TORCH_SPEC=torch ...` takes any build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
DEMO_DIR ?= outputs/demo

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# A synthetic scene, its source nerfacto, an IDS edit scored by the exact-score model, the evaluation.
# Each call writes a new folder under $(DEMO_DIR); nothing earlier is touched.
demo: $(STAMP)
	$(BIN)/ids-nerf demo --out $(DEMO_DIR)/$$(date +%Y%m%d-%H%M%S)

# CPU benchmarks (ratios side by side, not timed tests); GPU: benchmarks/gpu.sh via the device tool.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/guidance_step.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/edit_step.py

clean:
	rm -rf $(VENV) outputs
