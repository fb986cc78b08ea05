"""xcorpus-speech: candidates, normalisation settings, nested selection that never sees the
test corpus, calibration, the LOCO cells and heatmap on tiny generated data, the config, and
a --quick smoke run on the real corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.labels import CANONICAL
from emofuse.evaluate.results import results_to, validate_result
from emofuse.paths import repo_root
from emofuse.recipes import get_suite, list_suites
from emofuse.recipes import xcorpus as X

CONFIG = repo_root() / "configs" / "xcorpus-speech.yaml"
LABELS = {"a": ["neutral", "happy", "sad", "angry", "disgust"],
          "b": ["neutral", "happy", "sad", "angry", "fear"],
          "c": ["neutral", "happy", "sad", "angry", "fear", "surprise"],
          "d": ["neutral", "happy", "sad", "angry"]}


def synthetic(seed: int = 0, n_per: int = 6, layers: list[int] | None = None,
              shift: float = 3.0) -> X.Table:
    """Four corpora, 3 speakers each, class means shared across corpora; every corpus and
    speaker adds its own offset (the cross-corpus problem in miniature)."""
    rng = np.random.default_rng(seed)
    d = X.BLOCK * len(layers) if layers else 12
    protos = {lab: rng.normal(0, 1.5, d) for lab in CANONICAL}
    xs, labs, corp, spk, ids = [], [], [], [], []
    for c, labels in LABELS.items():
        off_c = rng.normal(0, shift, d)
        for s in range(3):
            off_s = rng.normal(0, 1.0, d)
            for lab in labels:
                for i in range(n_per):
                    xs.append(protos[lab] + off_c + off_s + rng.normal(0, 1, d))
                    labs.append(lab)
                    corp.append(c)
                    spk.append(f"s{s}")
                    ids.append(f"{c}-{s}-{lab}-{i}")
    return X.Table(np.array(xs), labs, corp, spk, ids, layers)


# -- candidates --------------------------------------------------------------------------------


def test_candidates_product_order_and_errors() -> None:
    cands = X.candidates({"layers": [[3], [3, 4]], "norm": ["global", "corpus"],
                          "C": [0.01, 0.1]})
    assert len(cands) == 8
    assert cands[0] == X.Candidate(layers=(3,), norm="global", C=0.01)
    assert cands[1].C == 0.1 and cands[1].rep_key() == cands[0].rep_key()
    assert cands[-1].layers == (3, 4) and cands[-1].norm == "corpus"
    assert X.candidates({"layers": [4, 5]})[0].layers == (4, 5)      # one list given alone
    assert X.candidates(None) == [X.Candidate()]
    assert "L3+4 meanstd concat" in cands[-1].short()
    with pytest.raises(ConfigError, match="unknown keys"):
        X.candidates({"alpha": [1]})
    with pytest.raises(ConfigError, match="norm"):
        X.candidates({"norm": "folder"})
    with pytest.raises(ConfigError, match="layers"):
        X.candidates({"layers": [[9]]})


def test_columns_follow_the_whisper_layout() -> None:
    t = synthetic(layers=[1, 2, 3], n_per=1)
    t.x[:] = np.tile(np.arange(3 * X.BLOCK, dtype=np.float32), (len(t.x), 1))
    x = X._columns(t, X.Candidate(layers=(2,), part="std"))
    assert x.shape[1] == 512 and x[0, 0] == X.BLOCK + 512          # layer 2, its std half
    x = X._columns(t, X.Candidate(layers=(1, 3), part="mean"))
    assert x.shape[1] == 1024 and x[0, 512] == 2 * X.BLOCK
    x = X._columns(t, X.Candidate(layers=(1, 3), combine="average"))
    assert x.shape[1] == X.BLOCK and x[0, 0] == X.BLOCK            # mean of 0 and 2048
    with pytest.raises(ConfigError, match="not among"):
        X._columns(t, X.Candidate(layers=(6,)))
    with pytest.raises(ConfigError, match="only for the whisper"):
        X._columns(synthetic(n_per=1), X.Candidate(layers=(3,)))


# -- normalisation settings ------------------------------------------------------------------


def test_inductive_never_uses_test_statistics_folder_and_enrol_do() -> None:
    t = synthetic()
    train = t.where(["a", "b", "c"])
    test = t.where(["d"])
    cand = X.Candidate(norm="corpus")
    _, zte, _ = X.transform(t, train, test, cand, "inductive")
    t2 = synthetic()
    t2.x[test[1:]] += 50.0                       # other test rows change ...
    _, zte2, _ = X.transform(t2, train, test, cand, "inductive")
    np.testing.assert_allclose(zte[0], zte2[0])  # ... the first one's features do not
    _, zf, _ = X.transform(t, train, test, cand, "folder")
    np.testing.assert_allclose(zf.mean(0), 0, atol=1e-4)            # the corpus, standardised
    _, ze, _ = X.transform(t, train, test, cand, "enrol", enrol_prior=0)
    for s in np.unique(t.speaker[test]):
        np.testing.assert_allclose(ze[t.speaker[test] == s].mean(0), 0, atol=1e-4)
    ztr, _, _ = X.transform(t, train, test, X.Candidate(norm="speaker"), "inductive")
    for s in np.unique(t.speaker[train]):
        np.testing.assert_allclose(ztr[t.speaker[train] == s].mean(0), 0, atol=1e-4)
    # scale "pooled": a speaker's mean is its own, its scale the training speakers' average
    ztr, zp, _ = X.transform(t, train, test, X.Candidate(scale="pooled"), "enrol",
                             enrol_prior=0)
    spk = t.speaker[test]
    for s in np.unique(spk):
        np.testing.assert_allclose(zp[spk == s].mean(0), 0, atol=1e-4)
    own = np.stack([ze[spk == s][0] / zp[spk == s][0] for s in np.unique(spk)])
    assert not np.allclose(own[0], own[1])          # group scaling differs per speaker ...
    np.testing.assert_allclose(np.mean([ztr[t.speaker[train] == s].var(0)
                                        for s in np.unique(t.speaker[train])], 0), 1, rtol=1e-3)


def test_enrol_prior_shrinks_small_speakers_and_nap_removes_speaker_directions() -> None:
    t = synthetic()
    train, test = t.where(["a", "b", "c"]), t.where(["d"])
    _, z0, _ = X.transform(t, train, test, X.Candidate(), "enrol", enrol_prior=0)
    _, z5, _ = X.transform(t, train, test, X.Candidate(), "enrol", enrol_prior=1e6)
    assert np.abs(z0.mean(0)).max() < 1e-3 < np.abs(z5.mean(0)).max()
    ztr, _, spk = X.transform(t, train, test, X.Candidate(nap=8), "inductive")
    names, means = X._speaker_means(ztr, spk)
    raw, _, _ = X.transform(t, train, test, X.Candidate(), "inductive")
    _, raw_means = X._speaker_means(raw, spk)
    assert np.var(means - means.mean(0)) < 0.2 * np.var(raw_means - raw_means.mean(0))
    assert len(names) == 9


def test_weights_balance_classes_and_corpora() -> None:
    labels = np.array(["a"] * 6 + ["b"] * 2 + ["a"] * 2)
    corpus = np.array(["x"] * 8 + ["y"] * 2)
    w = X._weights(labels, corpus, "class")
    assert w[labels == "a"].sum() == pytest.approx(w[labels == "b"].sum())
    w = X._weights(labels, corpus, "corpus_class")
    assert w[corpus == "x"].sum() == pytest.approx(w[corpus == "y"].sum())
    assert w[:6].sum() == pytest.approx(w[6:8].sum())
    assert w.mean() == pytest.approx(1.0)


# -- calibration -----------------------------------------------------------------------------


def test_ece_and_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 4))
    p_true = X.apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
    y = np.array([rng.choice(4, p=p) for p in p_true])
    assert X.ece(p_true, y) < 0.03
    overconfident = X.apply_temperature(p_true, 0.4)       # sharpened: T 0.4
    assert X.ece(overconfident, y) > 0.1
    t = X.fit_temperature([overconfident], [y])
    assert 2.2 < t < 2.8                                    # undoes it (1 / 0.4 = 2.5)
    assert X.ece(X.apply_temperature(overconfident, t), y) < 0.03
    assert X.fit_temperature([], []) == 1.0
    p = np.array([[0.5, 0.5, 0.0]])
    np.testing.assert_allclose(X.apply_temperature(p, 0.5), p)   # zeros stay zero
    assert X.ece(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


# -- LOCO ------------------------------------------------------------------------------------


def test_selection_never_sees_the_test_corpus(monkeypatch) -> None:
    t = synthetic()
    seen: list[set] = []
    real = X.fit_predict

    def spy(table, train, test, *args, **kw):
        seen.append(set(table.corpus[train]) | set(table.corpus[test]))
        return real(table, train, test, *args, **kw)

    monkeypatch.setattr(X, "fit_predict", spy)
    cands = X.candidates({"C": [0.01, 1.0], "norm": ["global", "corpus"]})
    cell = X.run_cell(t, ["a", "b", "c"], "d", cands, "inductive")
    *inner, final = seen
    assert len(inner) == 2 * 3 and all("d" not in s for s in inner)   # 2 reps x 3 held out
    assert final == {"a", "b", "c", "d"}
    assert cell["classes"] == ["neutral", "happy", "sad", "angry"]
    assert cell["chance"] == 0.25 and cell["n_test"] == len(t.where(["d"]))
    assert cell["selection"]["held_out"] == ["a", "b", "c"]
    # inner classes: the cell's, shared by the held-out corpus and the rest
    assert cell["selection"]["inner_classes"]["c"] == ["neutral", "happy", "sad", "angry"]
    sel = X.select(t, ["a", "b", "c"], ["neutral", "happy", "sad", "angry", "fear"],
                   cands[:1], "inductive")
    assert sel["inner_classes"] == {"a": ["neutral", "happy", "sad", "angry"],
                                    "b": ["neutral", "happy", "sad", "angry", "fear"],
                                    "c": ["neutral", "happy", "sad", "angry", "fear"]}
    assert np.shape(cell["selection"]["inner_ua"]) == (4, 3)
    best = int(np.argmax(cell["selection"]["inner_mean"]))
    assert cell["chosen_short"] == cands[best].short()
    assert 0 < cell["temperature"] and 0 <= cell["ece_ts"] <= 1


def test_loco_cells_classes_dropped_pairs_and_heatmap(tmp_path: Path) -> None:
    t = synthetic()
    grids = {"inductive": X.candidates({"norm": ["corpus"], "C": [0.1]}),
             "folder": X.candidates({"C": [0.1], "nap": [2], "augment": [1]}),
             "enrol": X.candidates({"C": [0.1], "balance": "corpus_class", "utt": "l2"})}
    loco = X.run_loco(t, ["a", "b", "c"], grids, extra_test=["d"], log=None)
    cells = {c["test"]: c for c in loco["cells"]["inductive"]}
    assert cells["a"]["classes"] == ["neutral", "happy", "sad", "angry"]    # disgust: only a
    assert cells["a"]["dropped"]["test"] == {"disgust": 6 * 3}
    assert cells["a"]["dropped"]["train"] == {"fear": 2 * 6 * 3, "surprise": 6 * 3}
    assert cells["d"]["train"] == ["a", "b", "c"] and len(cells["d"]["classes"]) == 4
    assert cells["c"]["chance"] == pytest.approx(1 / 5)
    # the class means are shared: folder / enrol normalisation removes the offsets
    for s in ("folder", "enrol"):
        assert np.mean([c["ua"] for c in loco["cells"][s]]) > 0.8
    assert loco["pairs"]["inductive"]["a"].keys() == {"b", "c"}
    png = X.plot_heatmap(loco, ["a", "b", "c"], ["d"], tmp_path / "h.png", title="t")
    assert png.stat().st_size > 1000


# -- the suite ---------------------------------------------------------------------------------


def test_config_is_valid_and_registered() -> None:
    cfg = load_config(CONFIG)
    assert cfg.suite == "xcorpus-speech"
    assert "xcorpus-speech" in {s.name for s in list_suites()}
    p = cfg.model.params
    assert p["corpora"] == ["ravdess", "savee", "ased", "nemo", "urdu"]
    assert p["targets"] == ["ravdess", "savee", "ased", "nemo"]
    grids = X._settings_grids(p, quick=False)
    assert set(grids) == {"inductive", "folder", "enrol"}
    assert all(len(g) >= 1 for g in grids.values())
    assert cfg.features.name == "whisper"
    assert cfg.features.params == {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd",
                                   "padding": "clip", "trim": "vad"}
    assert all(len(g) == 1 for g in X._settings_grids(p, quick=True).values())


def test_bad_params_are_explained() -> None:
    cfg = load_config(CONFIG)
    cfg.model.params = {**cfg.model.params, "grid": {"transductive": {}}}
    with pytest.raises(ConfigError, match=r"model\.params\.grid\.transductive: expected one "
                                          r"of inductive, folder, enrol"):
        get_suite("xcorpus-speech").run(cfg, quick=True)
    cfg.model.params = {"corpora": ["ravdess", "savee"]}
    with pytest.raises(ConfigError, match="at least 3"):
        get_suite("xcorpus-speech").run(cfg, quick=True)


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_suite_runs(shared_data: Path, shared_cache, tmp_path: Path, monkeypatch) -> None:
    # the Whisper states of the quick subset, extracted once for the three xcorpus suites
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache("xcorpus-speech-quick")))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIG)
    with results_to(tmp_path / "out"):
        result = get_suite("xcorpus-speech").run(cfg, quick=True)
    validate_result(result)
    assert not (tmp_path / "benchmarks").exists()
    assert Path(result["heatmap_png"]).is_file()
    assert Path(result["heatmap_png"]).parent == tmp_path / "out"
    for sfx in ("", "_folder", "_enrol"):
        assert len(result["metrics"][f"ua{sfx}"]["per_fold"]) == 5
        assert 0 <= result["metrics"][f"ece_ts{sfx}"]["mean"] <= 1
    cells = result["cells"]["inductive"]
    assert [c["test"] for c in cells] == ["ravdess", "savee", "ased", "nemo", "urdu", "cremad"]
    assert "calm" not in cells[0]["classes"] and cells[0]["dropped"]["test"]["calm"] > 0
    assert cells[-1]["classes"] == ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    assert "Quick smoke run" in result["notes"]
    json.dumps(result)


@pytest.mark.parametrize("bad", [{"gain": "loud"}, {"trim": "energy"}, {"pooling": "mean"}])
def test_bad_whisper_params_fail_before_any_file_is_read(bad, monkeypatch):
    """A typo in features.params is a config error at once, not after every clip was decoded."""
    from emofuse.recipes import _xcorpus_data as D

    def no_corpus(*a, **k):
        raise AssertionError("a corpus was read")

    monkeypatch.setattr(D, "load_corpus", no_corpus)
    params = {"layers": [3, 4], "pooling": "meanstd", "padding": "clip", **bad}
    with pytest.raises(ConfigError):
        D.load_table(["ravdess"], feature="whisper", params=params, log=None)
