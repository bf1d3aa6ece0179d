# One-command set-up: `make test` and `make demo` create (or reuse) .venv and install everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch pair these machines carry on disk; on your machine `make TORCH_SPEC=torch ...` takes any build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
DEMO_DIR ?= outputs/demo

.PHONY: install test demo clean

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

# Until the demo scene lands: a 2D IDS edit of the bundled example image with the tiny offline model.
demo: $(STAMP)
	test -d $(DEMO_DIR)/tiny-sd || $(BIN)/ids-nerf make-tiny-sd $(DEMO_DIR)/tiny-sd
	rm -rf $(DEMO_DIR)/edit
	HF_HUB_OFFLINE=1 $(BIN)/ids-nerf edit-image --image docs/assets/red_ball.png \
		--source-prompt "a red ball" --target-prompt "a blue ball" \
		--model $(DEMO_DIR)/tiny-sd --steps 50 --out $(DEMO_DIR)/edit

clean:
	rm -rf $(VENV) outputs
