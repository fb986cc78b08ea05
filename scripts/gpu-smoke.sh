#!/usr/bin/env bash
# GPU smoke test: the face recipe's real training function on CUDA, its hardware settings from
# the run configuration (accelerator: gpu), on generated crops (no corpus needed). Under 5 min.
# Usage: scripts/gpu-smoke.sh [devices] [strategy]     e.g. scripts/gpu-smoke.sh 1 auto
# Record the printed timing in docs/gpu-smoke.md with the GPU's name and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES="${1:-1}"
STRATEGY="${2:-auto}"
[ -x .venv/bin/python ] || make setup
.venv/bin/python - "$DEVICES" "$STRATEGY" <<'PY'
import json, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from emofuse.config import parse_config
from emofuse.recipes.face import fit_net

devices, strategy = int(sys.argv[1]), sys.argv[2]
if not torch.cuda.is_available():
    sys.exit("gpu-smoke: torch sees no CUDA device (torch " + torch.__version__ + ")")
cfg = parse_config({
    "suite": "gpu-smoke", "task": {"modality": "face"},
    "data": {"corpus": "fer2013"}, "protocol": {"kind": "official", "allow_leak": True},
    "features": {"name": "face_crop", "params": {"side": 48, "detect": False}},
    "model": {"name": "resnet18_face", "params": {"width": 32}},
    "train": {"max_epochs": 3, "batch_size": 256, "lr": 0.05, "class_weighted": False,
              "deterministic": False, "accelerator": "gpu", "devices": devices,
              "strategy": strategy}})
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (20000, 48, 48), dtype=np.uint8)
y = rng.integers(0, 7, 20000)
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    net, res = fit_net(cfg, train_x=x, train_y=y, val_x=x[:2000], val_y=y[:2000], n_classes=7,
                       out_dir=Path(tmp) / "run", seed=0)
print(json.dumps({"gpu": torch.cuda.get_device_name(0), "devices": devices,
                  "strategy": strategy, "epochs": res.epochs_run,
                  "seconds": round(time.perf_counter() - t0, 1),
                  "seconds_per_epoch": round((time.perf_counter() - t0) / res.epochs_run, 2),
                  "torch": torch.__version__}))
PY
