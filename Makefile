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

# The quick tier in one process, then the slow tier one test file per process: a whole-suite process crashed
# with SIGSEGV in a test that ran OpenVINO or loader workers after other files' DataLoader workers had failed
# (torch's signal handling left behind); a process per file keeps one file's leftovers from the next.
test: venv
	$(BIN)/python -m pytest -q -m "not slow"
	@for f in $$(grep -l "mark.slow" tests/test_*.py); do \
	    $(BIN)/python -m pytest -q -m slow "$$f"; rc=$$?; \
	    if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then echo "slow tests failed in $$f"; exit $$rc; fi; \
	done

# The quick tier: no subprocesses, torchrun, compile, ONNX export or training.
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
