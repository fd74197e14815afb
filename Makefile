# Two commands for a new user: `make demo` (train/eval/test on the bundled demo data) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast venv clean

venv: $(VENV)/.installed
	@echo "environment ready in $(VENV)/; for the README's python commands, first run: source $(BIN)/activate"

# Re-install only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

test: venv
	$(BIN)/python -m pytest -q

# The quick tier (under 30 s on a 2-core CPU): no subprocesses, torchrun, compile, ONNX export or training.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

demo: venv
	$(BIN)/python tools/demo.py

# What the project wrote: the environment, the demo, the results and the cached dataset statistics at their
# default paths. Checkpoints (checkpoint/) and data (data/) are the user's and stay.
clean:
	rm -rf $(VENV) demo result
	rm -f dataset/wtfile/cityscapes_inform.pkl dataset/wtfile/camvid_inform.pkl
	rmdir dataset/wtfile 2>/dev/null || true
