"""xcorpus-text-model: the bundled text model, as shipped, on the tiny generated corpora of
test_xcorpus_text (and, quick, on the shared corpora)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.config import parse_config
from emofuse.evaluate.results import validate_result
from emofuse.recipes import config_path, get_suite, load_suite_config
from emofuse.recipes import xcorpus_text_model as xtm
from tests.recipes.test_xcorpus_text import _dair, _goemotions, _meld


def _cfg(roots, models=("text",)):
    return parse_config({
        "suite": "xcorpus-text-model", "task": {"modality": "text"},
        "data": {"corpus": "dair+meld+goemotions"}, "protocol": {"kind": "official"},
        "features": {"name": "text_clean", "params": {}},
        "model": {"name": "bundled", "params": {"models": list(models), "roots": roots}},
        "train": {"seeds": [0], "num_threads": 1}})


def test_bundled_text_model_on_every_corpus(tmp_path, monkeypatch):
    """The bundled model (trained on all three corpora: every cell in-corpus) and a copy whose
    card says MELD only (dair-ai and GoEmotions outside, averaged into outside_*)."""
    import shutil

    from emofuse.inference import bundled_dir

    roots = {"dair": str(_dair(tmp_path / "dair")), "meld": str(_meld(tmp_path / "meld")),
             "goemotions": str(_goemotions(tmp_path / "go"))}
    meld_only = tmp_path / "meld-only"
    shutil.copytree(bundled_dir() / "text", meld_only)
    card = json.loads((meld_only / "card.json").read_text())
    (meld_only / "card.json").write_text(json.dumps({**card, "training_corpora": ["meld"]}))
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text-model").run(_cfg(roots, models=("meld-only", "text")),
                                              log=None)
    validate_result(res)
    json.dumps(res)
    bundled = res["models"]["text"]
    assert bundled["trained_on"] == ["dair", "meld", "goemotions"]
    assert bundled["weights_sha256"] and all(v["in_corpus"]
                                             for v in bundled["corpora"].values())
    assert not [k for k in res["metrics"] if k.startswith("outside_") and k.endswith("_text")]
    text = res["models"]["meld-only"]
    assert text["trained_on"] == ["meld"] and text["weights_sha256"] == bundled["weights_sha256"]
    cells = text["corpora"]
    assert [c for c, v in cells.items() if v["in_corpus"]] == ["meld"]
    assert "neutral" not in cells["dair"]["classes"]               # dair-ai has no neutral
    assert cells["dair"]["dropped_test"] == {"love": 3}            # the generated love rows
    assert cells["dair"]["chance_ua"] == pytest.approx(1 / len(cells["dair"]["classes"]))
    m = res["metrics"]
    assert m["outside_macro_f1"]["per_fold"] == [m["macro_f1_dair"]["mean"],
                                                 m["macro_f1_goemotions"]["mean"]]
    assert all(0 <= m[k]["mean"] <= 1 for k in m)
    assert "| meld | yes |" in res["notes"]


def test_score_drops_what_the_model_lacks():
    class Fixed:
        labels = ["happy", "sad", "angry"]

        def predict_proba(self, texts):
            return np.tile([0.6, 0.3, 0.1], (len(texts), 1))

    out = xtm.score(Fixed(), ["a", "b", "c", "d"], ["happy", "sad", "fear", "happy"])
    assert out["classes"] == ["happy", "sad"] and out["dropped_test"] == {"fear": 1}
    assert out["dropped_model"] == ["angry"] and out["n"] == 3
    assert out["ua"] == pytest.approx(0.5) and out["wa"] == pytest.approx(2 / 3)
    none = xtm.score(Fixed(), ["a"], ["fear"])
    assert none["n"] == 0 and none["classes"] == []
    assert xtm.trained_on({"data": {"corpus": "dair+meld"}}) == ["dair", "meld"]
    assert xtm.trained_on({"training_corpora": ["meld"], "data": {"corpus": "x"}}) == ["meld"]


def test_a_model_of_another_modality_is_refused(tmp_path, shared_data):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from emofuse.paths import repo_root

    cfg = (repo_root() / "configs" / "xcorpus-text-model.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.replace("models: [text]", "models: [speech]"))
    exe = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")
    p = subprocess.run([exe, "bench", "--config", str(bad), "--quick", "--results",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert p.returncode == 2, p.stderr
    assert "is a speech model, not a text model" in p.stderr and "Traceback" not in p.stderr


def test_committed_config():
    cfg = load_suite_config(config_path("xcorpus-text-model"), "xcorpus-text-model")
    p = xtm.XcorpusTextModelParams.of(cfg.model.params)
    assert p.models == ["text"] and p.corpora == ["dair", "meld", "goemotions"]
