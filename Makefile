# One-command set-up: `make test` and `make demo` create (or reuse) .venv and install everything,
# system packages included (see README.md, "System packages").
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the pair the project is tested with; `make TORCH_SPEC=torch ...` takes any build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
DEMO_DIR ?= outputs/demo

# Debian packages. libusb-1.0-0: open3d (imported by ns-export) loads libusb-1.0.so.0.
# chromium: the tests look at the nerfstudio viewer in headless Chromium.
RUNTIME_PACKAGES := libusb-1.0-0
TEST_PACKAGES := chromium

.PHONY: install system-packages test-system-packages test demo bench clean

# Installs what is missing with apt-get when it can (root on Debian, as in CI and containers);
# otherwise stops, before the long pip install, with one line naming the command to run.
define ensure_packages
	@missing=""; \
	for pkg in $(1); do \
	  case $$pkg in \
	    libusb-1.0-0) { /sbin/ldconfig -p 2>/dev/null || ldconfig -p; } | grep -q 'libusb-1.0.so.0' || missing="$$missing $$pkg" ;; \
	    chromium) command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing $$pkg" ;; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing system packages:$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	      || { echo "make: error: apt-get could not install$$missing; install them, then run make again" >&2; exit 1; }; \
	  else \
	    echo "make: error: missing system packages:$$missing; run 'sudo apt-get install -y$$missing' (Debian/Ubuntu), then make again" >&2; \
	    exit 1; \
	  fi; \
	fi
endef

system-packages:
	$(call ensure_packages,$(RUNTIME_PACKAGES))

test-system-packages:
	$(call ensure_packages,$(RUNTIME_PACKAGES) $(TEST_PACKAGES))

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

install: system-packages $(STAMP)

# The system packages come first: a missing one stops make before minutes of pip.
test: test-system-packages
	$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# A synthetic scene, its source nerfacto, an IDS edit scored by the exact-score model, the evaluation.
# Each call writes a new folder under $(DEMO_DIR); nothing earlier is touched.
demo: system-packages
	$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/ids-nerf demo --out $(DEMO_DIR)/$$(date +%Y%m%d-%H%M%S)

# CPU benchmarks (ratios side by side, not timed tests); GPU: benchmarks/gpu.sh via the device tool.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.guidance_step
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.edit_step

clean:
	rm -rf $(VENV) outputs
