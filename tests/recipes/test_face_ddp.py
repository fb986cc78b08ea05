"""A real recipe (the face recipe's training function) in two-process DDP on CPU, its hardware
settings taken from the run configuration (accelerator, devices, strategy, num_nodes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from emofuse.config import parse_config
    from emofuse.recipes.face import fit_net

    out = sys.argv[1]
    cfg = parse_config({
        "suite": "ddp-smoke", "task": {"modality": "face"},
        "data": {"corpus": "fer2013"}, "protocol": {"kind": "official", "allow_leak": True},
        "features": {"name": "face_crop", "params": {"side": 48, "detect": False}},
        "model": {"name": "resnet18_face",
                  "params": {"width": 4, "stem_stride": 2, "training": {"precision": "fp32"}}},
        "train": {"max_epochs": 2, "batch_size": 8, "lr": 0.01, "num_threads": 1,
                  "class_weighted": False, "deterministic": False,
                  "accelerator": "cpu", "devices": 2, "strategy": "ddp", "num_nodes": 1}})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    y = np.arange(64) % 2
    net, res = fit_net(cfg, train_x=x, train_y=y, val_x=x[:16], val_y=y[:16], n_classes=2,
                       out_dir=__import__("pathlib").Path(out) / "run", seed=0)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"world": world, "epochs_run": res.epochs_run}, f)
""")


@pytest.mark.slow
def test_face_recipe_trains_in_two_process_ddp_from_its_config(tmp_path: Path) -> None:
    script = tmp_path / "ddp_face.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i["world"] == 2 and i["epochs_run"] == 2 for i in infos), infos


def test_hardware_settings_come_from_the_config():
    from emofuse.config import TrainConfig

    t = TrainConfig(accelerator="cpu", devices=2, strategy="ddp", num_nodes=3)
    assert t.hardware() == {"accelerator": "cpu", "devices": 2, "strategy": "ddp",
                            "num_nodes": 3}
    with pytest.raises(ValueError):
        TrainConfig(num_nodes=0)
