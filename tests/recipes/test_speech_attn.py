"""ser-ravdess-whisper-attn: the attention head over Whisper frames (shapes, masking, layer
weights), its config, and a ``--quick`` run of the suite on the real RAVDESS clips (skipped
when ../shared/data is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import results_to, write_result
from emofuse.models import (
    build_model,
    whisper_attn,  # noqa: F401  (registers whisper_attn)
)
from emofuse.paths import repo_root
from emofuse.recipes import get_suite
from emofuse.recipes.speech_attn import parse_head, run_benchmark

CONFIG = repo_root() / "configs" / "ser-ravdess-whisper-attn.yaml"


def test_head_shapes_masking_and_layers() -> None:
    torch.manual_seed(0)
    net = build_model("whisper_attn", n_classes=8, layers=[2, 3, 4], hidden=16, attn_hidden=8,
                      dropout=0.0).eval()
    x = torch.randn(3, 20, 6, 512)
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 12:] = False
    out = net(x, mask)
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    x2 = x.clone()
    x2[1, 12:] = 1e3                     # padded frames change nothing
    torch.testing.assert_close(net(x2, mask), out)
    x3 = x.clone()
    x3[:, :, [0, 4, 5]] = 0.0            # unused layers change nothing
    torch.testing.assert_close(net(x3, mask), out)
    _, att = net.pool(x, mask)
    torch.testing.assert_close(att.sum(1), torch.ones(3))
    assert float(att[1, 12:].detach().sum()) == 0.0
    assert set(net.layer_weights()) == {2, 3, 4}
    with pytest.raises(ConfigError):
        build_model("whisper_attn", n_classes=8, layers=[7])


def test_config_parses() -> None:
    cfg = load_config(CONFIG)
    assert get_suite("ser-ravdess-whisper-attn").modality == "speech-attn"
    _, settings, pool = parse_head(cfg)
    assert "inductive" in settings and set(settings) <= {"inductive", "spknorm"} and pool
    assert len(cfg.train.seeds) >= 2 and cfg.protocol.kind == "emobox"


@pytest.mark.slow
def test_quick_run_on_ravdess(shared_data, tmp_path, monkeypatch) -> None:
    """``emofuse bench ser-ravdess-whisper-attn --quick``'s path (without the CLI's import of
    every recipe): 40 clips of 5 actors, one fold, one epoch, both settings."""
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    cfg = load_config(CONFIG)
    cfg.model.params["settings"] = ["inductive", "spknorm"]     # both, whatever is committed
    with results_to(results, []):
        res = run_benchmark(cfg, quick=True)
    res["suite"] += "-quick"
    jpath, mpath = write_result(res, results)
    res = json.loads(jpath.read_text())
    assert 0.0 <= res["metrics"]["ua"]["mean"] <= 1.0
    assert "ua_spknorm" in res["metrics"] and "Summary:" in mpath.read_text()
    runs = res["runs"]["inductive"]
    assert runs and np.isclose(sum(runs[0]["layer_weights"].values()), 1.0, atol=1e-3)
    assert runs[0]["val_actors"] and runs[0]["test_actors"]
    assert set(runs[0]["val_actors"]).isdisjoint(runs[0]["test_actors"])
