import json

import numpy as np
import pytest

from emofuse.errors import DataError
from emofuse.evaluate import (aggregate_folds, build_result, classification_metrics, collect_report,
                              write_result)
from emofuse.evaluate.plots import plot_class_counts, plot_confusion
from emofuse.evaluate.results import REQUIRED_KEYS, read_result

CLASSES = ["neutral", "happy", "sad"]


def _fold(seed):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], [10, 20, 30])
    pred = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
    proba = np.eye(3)[pred] * 0.8 + 0.2 / 3
    return classification_metrics(y, pred, classes=CLASSES, proba=proba), y, pred


def test_metrics_match_definitions():
    m, y, pred = _fold(0)
    recalls = [np.mean(pred[y == i] == i) for i in range(3)]
    assert m["ua"] == pytest.approx(np.mean(recalls))
    assert m["wa"] == pytest.approx(np.mean(y == pred)) == m["accuracy"]
    assert sum(sum(r) for r in m["confusion"]) == 60
    assert m["per_class"]["sad"]["support"] == 30
    assert 0.5 < m["roc_auc"] <= 1


def test_aggregate_and_results_file(tmp_path):
    folds = [_fold(s)[0] for s in range(3)]
    agg = aggregate_folds(folds)
    assert agg["metrics"]["ua"]["per_fold"] == [f["ua"] for f in folds]
    assert agg["metrics"]["ua"]["mean"] == pytest.approx(np.mean([f["ua"] for f in folds]))
    assert np.sum(agg["confusion"]) == 180
    spk = aggregate_folds(folds, suffix="_spknorm")
    res = build_result(suite="unit-test", corpus="toy", protocol="3 toy folds", classes=CLASSES,
                       metrics={**agg["metrics"], **spk["metrics"]}, per_class=agg["per_class"],
                       confusion=agg["confusion"], seeds=[0, 1], started="2026-01-01T00:00:00",
                       duration_s=1.5, command="emofuse bench unit-test")
    assert set(REQUIRED_KEYS) <= set(res)
    assert "ua_spknorm" in res["metrics"]
    jpath, mpath = write_result(res, tmp_path / "results")
    assert read_result(jpath)["suite"] == "unit-test"
    md = mpath.read_text()
    assert "| ua |" in md and "protocol: **3 toy folds**" in md and "sad" in md
    report = collect_report(tmp_path / "results", tmp_path / "docs/results.md")
    text = report.read_text()
    assert "[unit-test](#unit-test)" in text and "ua_spknorm" in text


def test_results_refuse_percent_and_missing_keys():
    bad = {"suite": "x", "metrics": {"ua": {"mean": 75.0, "std": 1.0, "per_fold": [75.0]}}}
    with pytest.raises(DataError) as ei:
        from emofuse.evaluate.results import validate_result

        validate_result(bad)
    msg = str(ei.value)
    assert "outside 0..1" in msg and "missing key 'corpus'" in msg


def test_plots(tmp_path):
    p = plot_confusion([[5, 1], [2, 7]], ["a", "b"], tmp_path / "c.png", title="t")
    assert p.stat().st_size > 1000
    q = plot_class_counts({"before": {"a": 3, "b": 10}, "after": {"a": 10, "b": 10}}, tmp_path / "d.png")
    assert q.stat().st_size > 1000


def test_report_handles_unreadable_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r/broken.json").write_text(json.dumps({"suite": "broken"}))
    text = collect_report(tmp_path / "r", tmp_path / "out.md").read_text()
    assert "unreadable" in text


def test_git_commit_ignores_benchmark_outputs(tmp_path):
    import shutil
    import subprocess

    from emofuse.evaluate.results import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "x.md").write_text("a")
    (tmp_path / "code.py").write_text("a")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    (tmp_path / "benchmarks" / "results" / "x.md").write_text("b")   # a suite's own output
    assert not git_commit(tmp_path / "benchmarks").endswith("+dirty")
    (tmp_path / "code.py").write_text("b")
    assert git_commit(tmp_path / "benchmarks").endswith("+dirty")


def test_a_run_records_the_commit_it_started_from(monkeypatch):
    """A commit made while a suite runs must not be credited with its figures."""
    from emofuse.evaluate import results as R

    heads = iter(["aaa", "bbb+dirty"])        # HEAD when the run starts, then later
    monkeypatch.setattr(R, "git_commit", lambda cwd=None: next(heads))
    m, _, _ = _fold(0)
    kw = dict(suite="s", corpus="c", protocol="p", classes=CLASSES,
              metrics={"ua": {"mean": m["ua"], "std": 0.0, "per_fold": [m["ua"]]}},
              per_class={}, confusion=m["confusion"], seeds=[0],
              started="2026-01-01T00:00:00", duration_s=1.0)
    with R.pinned_commit() as pinned:           # HEAD at the start: aaa
        assert pinned == "aaa"
        assert build_result(**kw)["git_commit"] == "aaa"   # not asked again at the end
    assert build_result(**kw)["git_commit"] == "bbb+dirty"  # outside a run: HEAD now
