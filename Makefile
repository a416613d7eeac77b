# The project's table of contents. `make train` and `make test` are the README's quick start.
PYTHON ?= python3
STAMP := .make/installed

.PHONY: install train train-autoencoder test bench evaluate folders demo data

install: $(STAMP)  ## install the Python requirements (once per change of requirements.txt) and make the folders

$(STAMP): requirements.txt
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) setup.py
	@mkdir -p .make && touch $(STAMP)

folders:
	$(PYTHON) setup.py

train: install  ## default run: compact net, Sobel, embedded data, <= 5 min on 2 CPU cores -> models/sobel.ckpt
	$(PYTHON) -m src.experiment.train --model compact --filter sobel --data skimage --max-time 210 --output models/sobel.ckpt --quiet

train-autoencoder: install  ## the seed autoencoder, same data and budget -> models/autoencoder.ckpt
	$(PYTHON) -m src.experiment.train --model autoencoder --filter sobel --data skimage --max-time 210 --lr 1e-3 --output models/autoencoder.ckpt --quiet

evaluate: install  ## test table, CSV and grid figure for the shipped checkpoints
	$(PYTHON) -m src.testing.evaluate --checkpoint models/sobel.ckpt
	$(PYTHON) -m src.testing.evaluate --checkpoint models/autoencoder.ckpt

test: install  ## the test suite (CI runs exactly this)
	$(PYTHON) -m pytest -q tests

bench: install  ## CPU inference MP/s of the default model vs the OpenCV Sobel pipeline; a 100 MP tiled run
	$(PYTHON) -m src.testing.bench
	$(PYTHON) -m src.testing.bench --large 100 --tile 1024

demo: install  ## the Gradio demo on http://127.0.0.1:7860
	$(PYTHON) demo_gradio.py

data: install  ## download + prepare a data set: make data NAME=mini-coco|cifar100|oxford-pets [SIZE=64|128|native] [FILTER=sobel]
	@test -n "$(NAME)" || { echo "usage: make data NAME=mini-coco|cifar100|oxford-pets [SIZE=64|128|native] [FILTER=sobel]"; exit 2; }
	$(PYTHON) -m src.dataset.download $(NAME)
	$(PYTHON) -m src.dataset.prepare $(NAME) $(if $(SIZE),--size $(SIZE)) --filter $(or $(FILTER),sobel)
