"""``emofuse augment``: list, plan (table + plot), text (eda and a fake LLM) and show."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from emofuse.cli import app, main

from ._fakes import FakeBackend, fake_embed, write_dair

runner = CliRunner()


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("emofuse.recipes.augment.EMBED", fake_embed)
    monkeypatch.setattr("emofuse.augment.text.SmolLM2Backend", FakeBackend)
    return write_dair(tmp_path / "dair", n=12)


def _run(*args: str):
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def test_augment_is_registered_and_lists_generators():
    out = _run("augment", "list")
    assert "llm_text" in out and "eda_text" in out


def test_plan_prints_the_table_and_plots(corpus, tmp_path):
    out = _run("augment", "plan", "--corpus", "dair", "--root", str(corpus),
               "--plot", str(tmp_path / "plan.png"))
    assert "28 training items" in out and "8 synthetic items needed" in out
    angry = next(line for line in out.splitlines() if line.startswith("angry"))
    assert angry.split() == ["angry", "4", "12", "8", "12"]
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"
    out = _run("augment", "plan", "--corpus", "dair", "--root", str(corpus), "--strategy",
               "fixed", "--per-class", "3")
    assert "9 synthetic items needed" in out


@pytest.mark.parametrize("generator", ["eda", "llm", "paraphrase"])
def test_text_writes_a_set_with_its_manifest(corpus, tmp_path, generator):
    out_dir = tmp_path / f"syn-{generator}"
    out = _run("augment", "text", "--corpus", "dair", "--root", str(corpus), "--generator",
               generator, "--per-class", "5", "--out", str(out_dir), "--seed", "1")
    m = json.loads((out_dir / "manifest.json").read_text())
    assert m["seed"] == 1 and m["fitted_on"]["corpus"] == "dair"
    assert all(i.startswith("train-") for i in m["fitted_on"]["ids"])  # never dev/test
    assert m["settings"]["plan"]["needed"] == {"happy": 0, "sad": 0, "angry": 5}
    assert {it["label"] for it in m["items"]} <= {"angry"}
    assert (out_dir / "items.csv").is_file() and (out_dir / "plan.png").is_file()
    assert "kept" in out
    shown = _run("augment", "show", str(out_dir))
    assert "fitted" in shown and "llm_generate" in shown or generator != "llm"
    assert "fitted" in shown


def test_text_on_a_fraction_and_errors(corpus, tmp_path):
    out_dir = tmp_path / "syn"
    _run("augment", "text", "--corpus", "dair", "--root", str(corpus), "--generator", "eda",
         "--fraction", "0.5", "--per-class", "2", "--out", str(out_dir))
    m = json.loads((out_dir / "manifest.json").read_text())
    assert m["fitted_on"]["n"] == 14
    m2 = json.loads((out_dir / "manifest.json").read_text())
    assert m2["settings"]["filter_class_weight"] == "balanced"
    _run("augment", "text", "--corpus", "dair", "--root", str(corpus), "--generator", "eda",
         "--per-class", "2", "--filter", "real", "--out", str(tmp_path / "syn2"))
    m3 = json.loads((tmp_path / "syn2" / "manifest.json").read_text())
    assert m3["settings"]["filter_class_weight"] is None
    for bad in (["--generator", "gan"], ["--fraction", "2"], ["--filter", "strict"]):
        with pytest.raises(SystemExit) as exc:
            main(["augment", "text", "--corpus", "dair", "--root", str(corpus), "--out",
                  str(out_dir), *bad])
        assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["augment", "show", str(tmp_path / "nothing")])
    assert exc.value.code == 2


def test_aaec_writes_feature_sequences_with_manifest_and_gates(tmp_path, monkeypatch, capsys):
    from emofuse.augment import load_set
    from emofuse.augment.aaec import read_features

    from .._tiny_models import write_wav

    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "ravdess"
    for actor in (1, 2, 3):
        d = root / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for emo in range(1, 9):
            write_wav(d / f"03-01-{emo:02d}-01-01-01-{actor:02d}.wav", 0.6,
                      freq=120.0 + 40 * emo + 5 * actor)
    out = tmp_path / "aaec"
    text = _run("augment", "aaec", "--root", str(root), "--holdout", "Actor_03",
                "--per-class", "2", "--epochs", "1", "--out", str(out))
    assert "manifest.json" in text
    sset = load_set(out)
    assert sset.generator == "aaec" and len(sset.items) == 16
    assert sset.fitted_on["n"] == 16                       # Actor_03 held out of the fit
    assert "frechet" in sset.quality["overall"]
    X, labels = read_features(sset, out)
    assert X.shape[0] == 16 and X.shape[2] == 40 and len(set(labels)) == 8
    with pytest.raises(SystemExit) as exc:
        main(["augment", "aaec", "--root", str(root), "--variant", "nope", "--out",
              str(tmp_path / "x")])
    assert exc.value.code == 2 and "unknown variant" in capsys.readouterr().err


def test_tts_command(tmp_path, capsys):
    from emofuse.augment import load_set
    from emofuse.augment.tts import engine_status

    if engine_status(["espeak"])["espeak"] is not None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path / "tts"
    _run("augment", "tts", "--engines", "espeak", "--classes", "angry,sad", "--per-class", "1",
         "--out", str(out))
    sset = load_set(out)
    assert sorted(it.label for it in sset.items) == ["angry", "sad"]
    assert all((out / it.path).is_file() for it in sset.items)
    with pytest.raises(SystemExit) as exc:
        main(["augment", "tts", "--engines", "festival", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "festival" in capsys.readouterr().err
