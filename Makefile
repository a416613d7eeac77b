# The project's table of contents. `make` lists the targets; `make train` and `make test` are the README's quick start.
# Everything runs in the project's virtual environment .venv, which `make install` creates and fills once per change of
# requirements.txt. BOOTSTRAP_PYTHON is the interpreter that creates it (any Python >= 3.10 with the venv module, e.g. the
# system's /usr/bin/python3: PEP 668 does not apply inside a venv); PYTHON=... runs the targets with another interpreter
# instead (your own environment: then nothing is installed).
.DEFAULT_GOAL := help
VENV := .venv
BOOTSTRAP_PYTHON ?= python3
PYTHON ?= $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: help install kernel screenshot train train-autoencoder test test-fast bench quantize evaluate folders demo data zoo train-pix2pix notebook gpu-bench ablation-gan figures sweeps knobs knobs-threads bench-loader teach-target train-pix2pix-cpu train-pix2pix-photos train-pix2pix-photos-l1 photos operators soak grid-size depth results

help:  ## this list (the default goal: plain `make` installs nothing)
	@echo "usage: make TARGET [PYTHON=interpreter] [BOOTSTRAP_PYTHON=interpreter that creates $(VENV)]"
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):[^#]*## (.*)/  \1\t\2/' | expand -t 20

ifeq ($(PYTHON),$(VENV)/bin/python)
install: $(STAMP)  ## create .venv, install the requirements and this package (pip install -e .) into it, once per change; make the folders
	@$(PYTHON) setup.py >/dev/null

$(VENV)/bin/python:
	@$(BOOTSTRAP_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { echo "error: $(BOOTSTRAP_PYTHON) is missing or older than Python 3.10; run with BOOTSTRAP_PYTHON=/path/to/python3.11"; exit 2; }
	@$(BOOTSTRAP_PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(BOOTSTRAP_PYTHON) has no venv module: sudo apt-get install python3-venv (Debian/Ubuntu), or run with BOOTSTRAP_PYTHON=/path/to/another/python3"; exit 2; }
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml $(VENV)/bin/python
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m pip install -q --no-deps -e .
	@touch $(STAMP)
else
install:  # PYTHON=... given: run with that interpreter, install nothing
	@echo "using PYTHON=$(PYTHON) as it is (nothing installed; drop PYTHON=... to use $(VENV))"
	@$(PYTHON) setup.py >/dev/null
endif

kernel: install  ## register .venv as the Jupyter kernel "learn-filters", the one both notebooks name, for any Jupyter
	$(PYTHON) -m ipykernel install --user --name learn-filters --display-name "learn-filters (.venv)"

screenshot: install  ## refresh figures/gradio.png and figures/teach.png: the browser tests' screenshots of the demo (needs Chromium)
	DEMO_SCREENSHOT=figures/gradio.png $(PYTHON) -m pytest -q tests/test_demo.py -k browser
	TEACH_SCREENSHOT=figures/teach.png $(PYTHON) -m pytest -q tests/test_teach_demo.py -k browser

folders:  ## data/{raw,interim,processed}, figures/, models/
	$(PYTHON) setup.py

train: install  ## default run: mirror-symmetric separable compact net, Sobel, embedded data, 150 steps (Adam + L-BFGS finish) -> models/sobel.ckpt
	$(PYTHON) -m src.training.train --model compact --model-arg separable=True --model-arg symmetric=True --filter sobel --data skimage --output models/sobel.ckpt
	@echo "make train wrote models/sobel.ckpt, the shipped model (git diff --stat models/ shows whether it changed)"

train-autoencoder: install  ## the seed autoencoder, same data, its default 2000 Adam steps -> models/autoencoder.ckpt
	$(PYTHON) -m src.training.train --model autoencoder --filter sobel --data skimage --output models/autoencoder.ckpt

evaluate: install  ## test table, CSV and grid figure for the shipped checkpoints
	$(PYTHON) -m src.evaluation.evaluate --checkpoint models/sobel.ckpt
	$(PYTHON) -m src.evaluation.evaluate --checkpoint models/autoencoder.ckpt
	$(PYTHON) -m src.evaluation.evaluate --checkpoint models/pix2pix.ckpt
	$(PYTHON) -m src.evaluation.evaluate --checkpoint models/pix2pix-photos.ckpt
	$(PYTHON) -m src.evaluation.evaluate --checkpoint models/pix2pix-photos-l1.ckpt

test: install  ## the whole test suite and the doctests in src/ (CI runs exactly this)
	$(PYTHON) -m pytest -q

test-fast: install  ## the suite without the slow tests (browser, DDP, notebooks, knobs)
	$(PYTHON) -m pytest -q -m "not slow"

bench: install  ## CPU inference MP/s of the default model vs the OpenCV Sobel pipeline; 24 and 100 MP through the predict command -> figures/huge.md
	$(PYTHON) -m src.bench.speed
	$(PYTHON) -m src.bench.huge

bench-loader: install  ## training-loader crops/s, MB/s and peak memory on 5,000 generated 640x480 JPEGs (temp folder) -> figures/loader.md
	$(PYTHON) -m src.bench.loader

quantize: install  ## fp16 / bf16 / int8 copies of the shipped checkpoints: file size and test PSNR -> figures/quantize.{csv,md}
	$(PYTHON) -m src.studies.quantize

soak: install  ## the demo's memory soak: 50 /teach jobs and 200 /predict calls against the real server -> figures/soak.md
	$(PYTHON) -m src.demo.soak --out figures/soak.md

demo: install  ## the Gradio demo on http://127.0.0.1:7860
	$(PYTHON) demo_gradio.py

data: install  ## download + prepare a data set: make data NAME=mini-coco|cifar100|oxford-pets [SIZE=64|128|native] [FILTER=sobel]
	@test -n "$(NAME)" || { echo "usage: make data NAME=mini-coco|cifar100|oxford-pets [SIZE=64|128|native] [FILTER=sobel]"; exit 2; }
	$(PYTHON) -m src.download.download $(NAME)
	$(PYTHON) -m src.download.prepare $(NAME) $(if $(SIZE),--size $(SIZE)) --filter $(or $(FILTER),sobel)

photos: install  ## copy + SHA-256-check the photographs (train/val: Wikipedia, test: Kodak) from a clone: make photos FROM=path/to/clone
	@test -n "$(FROM)" || { echo "usage: make photos FROM=path/to/clone (of https://github.com/Zelex/images)"; exit 2; }
	$(PYTHON) -m src.download.photos --from $(FROM)

teach-target: install  ## Teach by example from one 768x512 pair: held-out photos PSNR, CPU seconds -> figures/teach.{md,csv}
	$(PYTHON) -m src.studies.teach_target

zoo: install  ## every filter x {compact, CAN, seed AE}, a step budget each (48 runs, ZOO_STEPS) -> figures/zoo.{md,csv}
	$(PYTHON) -m src.studies.zoo --repeats 3

SHARDS ?= 2
SEEDS ?= 0 1 2
operators: install  ## the expensive operators learned from the photos (make photos first): SEEDS x 8 runs in SHARDS training shards pinned one per core, then the table -> models/operators/*.ckpt, figures/operators.{md,csv}
	@pids=; for i in $$(seq 0 $$(($(SHARDS) - 1))); do taskset -c $$i $(PYTHON) -m src.studies.operators train --shard $$i/$(SHARDS) --seeds $(SEEDS) --threads 1 & pids="$$pids $$!"; done; \
	for p in $$pids; do wait $$p || exit 1; done
	$(PYTHON) -m src.studies.operators table

grid-size: install  ## question 5 on an expensive operator: the grid's stream width 4/8/16/32 on detail-enhance (make operators first: 16 is its model), 2 seeds, SHARDS shards pinned one per core, then the table -> figures/grid-size.{md,csv}
	@pids=; for i in $$(seq 0 $$(($(SHARDS) - 1))); do taskset -c $$i $(PYTHON) -m src.studies.grid_size train --shard $$i/$(SHARDS) --threads 1 & pids="$$pids $$!"; done; \
	for p in $$pids; do wait $$p || exit 1; done
	$(PYTHON) -m src.studies.grid_size table

depth: install  ## question 7 on photos (make photos first): the CAN at width 24 and depths 3/5/7, and widths 8/16 at depth 5, on edge-preserving, detail-enhance and Sobel, 3 seeds, SHARDS shards pinned one per core, then the table beside the shipped grids -> figures/depth.{md,csv}
	@pids=; for i in $$(seq 0 $$(($(SHARDS) - 1))); do taskset -c $$i $(PYTHON) -m src.studies.depth train --shard $$i/$(SHARDS) --threads 1 & pids="$$pids $$!"; done; \
	for p in $$pids; do wait $$p || exit 1; done
	$(PYTHON) -m src.studies.depth table

sweeps: install  ## params vs PSNR on Sobel (11 nets), ZOO_STEPS each -> figures/sweep-size.{csv,md,png} (question 7's depth: make depth)
	$(PYTHON) -m src.studies.sweep size

results: install  ## every table and figure the docs quote, regenerated in pieces (one-core pieces pinned side by side, benchmarks alone; resumable; python -m src.reports.results --list shows them): make results [ONLY="bench sweeps"] [FORCE=1]
	$(PYTHON) -m src.reports.results $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force)

figures: install  ## every README figure into figures/: from the shipped checkpoints and the committed CSVs of the long runs (~40 s)
	$(PYTHON) -m src.reports.figures

train-pix2pix: install  ## Pix2Pix (U-Net 128 + PatchGAN, ngf 64) on one GPU -> models/pix2pix-gpu.ckpt (main.ipynb PROFILE=gpu)
	$(PYTHON) -m src.training.train --model pix2pix --crop 128 --batch-size 32 --accelerator gpu --precision bf16-mixed --channels-last --num-workers 8 --max-steps 40000 --steps-per-epoch 500 --output models/pix2pix-gpu.ckpt --quiet

train-pix2pix-cpu: install  ## the shipped models/pix2pix.ckpt: ngf 16, 128² crops, batch 8, 9,000 batches on 1 CPU thread (~50 min; RESUME=1 continues it)
	$(PYTHON) -m src.training.train --model pix2pix --model-arg ngf=16 --crop 128 --batch-size 8 --max-steps 18000 --steps-per-epoch 500 --output models/pix2pix.ckpt --threads 1 --quiet $(if $(RESUME),--resume)

train-pix2pix-photos: install  ## Pix2Pix learned from photographs (make photos first): the cpu recipe on --data photos, 15,000 batches on 1 CPU thread (~52 min) -> models/pix2pix-photos.ckpt
	$(PYTHON) -m src.training.train --model pix2pix --model-arg ngf=16 --data photos --crop 128 --batch-size 8 --max-steps 30000 --steps-per-epoch 500 --output models/pix2pix-photos.ckpt --threads 1 --quiet $(if $(RESUME),--resume)

train-pix2pix-photos-l1: install  ## the same generator, recipe and photographs with L1 alone (--gan-weight 0: the discriminator trains, unused), 15,000 batches on 1 CPU thread -> models/pix2pix-photos-l1.ckpt
	$(PYTHON) -m src.training.train --model pix2pix --model-arg ngf=16 --data photos --crop 128 --batch-size 8 --max-steps 30000 --steps-per-epoch 500 --gan-weight 0 --output models/pix2pix-photos-l1.ckpt --threads 1 --quiet $(if $(RESUME),--resume)

# kernel python3: the interpreter that runs nbconvert ($(PYTHON)), so it works before `make kernel` registers learn-filters
notebook: install  ## main.ipynb top to bottom into a copy, runs/main.ipynb (never --inplace over the committed one; its files go to runs/main/): PROFILE=cpu (default: loads the shipped checkpoint, or trains it), smoke (CI, minutes) or gpu
	$(PYTHON) -m jupyter nbconvert --to notebook --execute main.ipynb --output-dir runs --output main.ipynb --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=3600

gpu-bench: install  ## GPU figures in <= 8 min (Pix2Pix knobs and gpu profile, CAN 24x9, compact-net GP/s) -> figures/gpu-bench.{json,md}
	$(PYTHON) -m src.bench.gpu

knobs: install  ## each speed knob's measured speed-up on this CPU (+ GPU rows from gpu-bench) -> figures/knobs.{csv,md}
	$(PYTHON) -m src.bench.knobs

knobs-threads: install  ## training at 1 vs 2 threads, idle and with one core busy (the default's evidence) -> figures/knobs-threads.{csv,md}
	$(PYTHON) -m src.bench.knobs --only threads --out figures/knobs-threads

ablation-gan: install  ## L1 only vs GAN + L1: same U-Net, optimiser, schedule, crops and steps, λ 100 and 10, 3 seeds each (9 runs, ~25 min on a quiet core) -> figures/ablation-gan.{csv,md,png}
	$(PYTHON) -m src.studies.ablation_gan --arms l1 gan gan-l10 --seeds 0 1 2 --batches 600 --threads 1
