"""The how-to pages work: each is followed on a toy case, code taken from the page itself."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

DOCS = Path(__file__).resolve().parents[2] / "docs"


import pytest


@pytest.fixture(autouse=True)
def _restore_registries():
    """What a page registers stays inside its test (names must not shadow other tests')."""
    from emofuse.corpora import _base
    from emofuse.models import _REGISTRY as models

    saved_models, saved_corpora = dict(models), dict(_base._REGISTRY)
    yield
    models.clear()
    models.update(saved_models)
    _base._REGISTRY.clear()
    _base._REGISTRY.update(saved_corpora)


def _code(page: str) -> str:
    text = (DOCS / "howto" / page).read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]


def test_add_a_corpus(tmp_path):
    ns: dict = {}
    exec(compile(_code("add-a-corpus.md"), "add-a-corpus.md", "exec"), ns)
    from emofuse.corpora import load_corpus

    rng = np.random.default_rng(0)
    for spk in ("s1", "s2"):
        for emo in ("ang", "hap", "neu", "sad"):
            sf.write(tmp_path / f"{spk}-{emo}-1.wav",
                     rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
    (tmp_path / "README-not-audio.wav").write_text("oops")
    (tmp_path / "badname.wav").write_bytes((tmp_path / "s1-ang-1.wav").read_bytes())
    scan = load_corpus("toyemo", tmp_path)
    assert len(scan.records) == 8 and {r.speaker for r in scan.records} == {"s1", "s2"}
    assert {r.label for r in scan.records} == {"angry", "happy", "neutral", "sad"}
    reasons = " ".join(a.reason for a in scan.anomalies)
    assert "<speaker>-<emotion>-<n>" in reasons and len(scan.anomalies) == 2


def test_add_a_model(tmp_path):
    ns: dict = {}
    exec(compile(_code("add-a-model.md"), "add-a-model.md", "exec"), ns)
    import torch

    from emofuse.models import build_model
    from emofuse.train import load_model, save_model

    net = build_model("toy_mlp", n_classes=3, in_dim=8, hidden=16)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    first = None
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    card = {"task": "speech", "labels": ["a", "b", "c"], "features": {"name": "toy"},
            "model": {"name": "toy_mlp", "params": {"in_dim": 8, "hidden": 16}},
            "data": {}, "protocol": {}, "metrics": {}}
    save_model(tmp_path / "m", net, card)
    state, back = load_model(tmp_path / "m")
    again = build_model("toy_mlp", n_classes=3, in_dim=8, hidden=16)
    again.load_state_dict(state)
    torch.testing.assert_close(again(x), net(x))
    assert back["labels"] == ["a", "b", "c"]
