"""The bundled adaptive speech model (xcorpus-speech trained on all corpora): its stored heads
reproduce the suite's own probabilities in every setting, it saves and loads without torch
at predict time, and ``emofuse train --quick`` builds it from the real corpora."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.models.speech_adaptive import AdaptiveLinear, source_stats
from emofuse.recipes import xcorpus as X
from emofuse.recipes.xcorpus_model import _fit_head, head_columns

from .test_xcorpus import synthetic

LAYERS = [3, 4]


@pytest.fixture(scope="module")
def table() -> X.Table:
    return synthetic(seed=1, n_per=4, layers=LAYERS)


@pytest.mark.parametrize("setting,cand", [
    ("inductive", X.Candidate(layers=(4,), norm="corpus", C=0.01)),
    ("inductive", X.Candidate(layers=(3, 4), norm="global", C=0.1)),
    ("folder", X.Candidate(layers=(3, 4), C=0.01)),
    ("enrol", X.Candidate(layers=(3,), part="mean", C=0.01)),
    ("enrol", X.Candidate(layers=(3, 4), scale="pooled", C=0.01)),
])
def test_heads_reproduce_the_suite(table, setting, cand) -> None:
    classes = ["neutral", "happy", "sad", "angry"]
    train = table.where(["a", "b", "c"], classes)
    test = table.where(["d"], classes)
    (want,) = X.fit_predict(table, train, test, classes, [cand], setting, enrol_prior=5.0)
    head = _fit_head(table, train, classes, cand, setting, head_columns(cand, LAYERS), 1.0,
                     seed=0)
    xr = table.x[train].astype(np.float64)
    model = AdaptiveLinear(classes, {"inductive": head, setting: head},
                           prior_mean=xr.mean(0), prior_var=xr.var(0),
                           prior=0.0 if setting == "folder" else 5.0)
    xt = table.x[test]
    if setting == "inductive":
        got = model.predict_proba(xt)
    elif setting == "folder":
        got = model.predict_proba(xt, mode="folder", stats=source_stats(xt))
    else:
        got = np.zeros_like(want)
        for s in np.unique(table.speaker[test]):
            m = table.speaker[test] == s
            got[m] = model.predict_proba(xt[m], mode="enrol", stats=source_stats(xt[m]))
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_round_trip_and_fallbacks(table) -> None:
    classes = ["neutral", "happy", "sad", "angry"]
    rows = table.where(["a", "b", "c", "d"], classes)
    cand = X.Candidate(layers=(3, 4), norm="corpus", C=0.01)
    head = _fit_head(table, rows, classes, cand, "inductive", head_columns(cand, LAYERS), 2.0,
                     seed=0)
    xr = table.x[rows].astype(np.float64)
    model = AdaptiveLinear(classes, {"inductive": head}, prior_mean=xr.mean(0),
                           prior_var=xr.var(0))
    arrays, tree = model.to_arrays()
    again = AdaptiveLinear.from_arrays(classes, arrays, tree)
    x = table.x[rows[:10]]
    p = again.predict_proba(x)
    np.testing.assert_allclose(p, model.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0)
    # no folder head, or no statistics: the inductive head answers
    np.testing.assert_allclose(again.predict_proba(x, mode="folder", stats=source_stats(x)), p)
    # the temperature softens: lower top confidence than at T = 1
    head.temperature = 1.0
    assert model.predict_proba(x).max(1).mean() > p.max(1).mean()


def test_enrol_statistics_are_shrunk(table) -> None:
    """One recording of a speaker cannot blow up the scale (variance 0 without the prior)."""
    classes = ["neutral", "happy", "sad", "angry"]
    rows = table.where(["a", "b", "c"], classes)
    cand = X.Candidate(layers=(3,), C=0.01)
    head = _fit_head(table, rows, classes, cand, "enrol", head_columns(cand, LAYERS), 1.0,
                     seed=0)
    xr = table.x[rows].astype(np.float64)
    model = AdaptiveLinear(classes, {"inductive": head, "enrol": head},
                           prior_mean=xr.mean(0), prior_var=xr.var(0), prior=5.0)
    one = table.x[rows[:1]]
    z = model.standardise(one, mode="enrol", stats=source_stats(one))
    assert np.isfinite(z).all() and np.abs(z).max() < 50


def test_head_columns_match_the_table(table) -> None:
    for cand in (X.Candidate(layers=(4,)), X.Candidate(layers=(3, 4), part="std"),
                 X.Candidate(layers=None)):
        cols = head_columns(cand, LAYERS)
        np.testing.assert_array_equal(table.x[:, cols], X._columns(table, cand))


@pytest.mark.slow
def test_train_quick_builds_a_working_model(shared_data, shared_cache, tmp_path,
                                            monkeypatch) -> None:
    """``emofuse train --config configs/models/speech.yaml --quick`` on the real corpora: an
    adaptive model the product loads (three heads over one Whisper feature)."""
    from emofuse.config import load_config
    from emofuse.paths import repo_root
    from emofuse.recipes.speech import train
    from emofuse.inference.speech import SpeechPredictor

    # the quick subset's Whisper states, shared with the xcorpus suites' quick runs
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache("xcorpus-speech-quick")))
    cfg = load_config(repo_root() / "configs" / "models" / "speech.yaml")
    out = train(cfg, out_dir=tmp_path / "speech", quick=True)
    pred = SpeechPredictor(out)
    assert pred.labels == ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    assert pred.adapts and pred.card["kind"] == "adaptive"
    assert set(pred.card["modes"]) == {"inductive", "folder", "enrol"}
    assert pred.card["encoder"]["licence"] == "MIT"
    clip = repo_root() / "examples" / "speech.flac"
    p = pred.analyse(clip)
    assert abs(sum(p["probs"].values()) - 1) < 1e-4 and not p["warnings"]
    stats = pred.speaker_stats([clip, clip], mode="enrol")
    q = pred.analyse(clip, speaker=stats)
    assert q["probs"] != p["probs"]
