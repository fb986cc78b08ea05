"""Every committed run configuration (``configs/*.yaml``, ``configs/models/*.yaml``) loads with
the config loader, and the configs whose suite runs in a few seconds on the shared corpora are
quick-run end to end through ``emofuse bench --config FILE --quick``; the others are skipped
with the reason (heavy suites). The whole file stays under about a minute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emofuse.cli import run
from emofuse.config import explain_config_errors, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted([*CONFIGS.glob("*.yaml"), *(CONFIGS / "models").glob("*.yaml")])


def _name(p: Path) -> str:
    return p.relative_to(CONFIGS).as_posix()


#: Configs quick-run here (a few seconds each on the shared data: --quick keeps one utterance
#: per speaker and class of five speakers, and a single fold).
QUICK = ("example-tiny.yaml", "ser-savee-egemaps-svm.yaml", "ser-ravdess-egemaps-svm.yaml")

#: Why the other configs are not run here (name prefix -> reason); each has its own tests on
#: fixtures, and its figures come from `emofuse bench <suite>`.
HEAVY = {
    "models/": "trains a bundled model (`make models`): minutes on the full corpus",
    "aug-": "augmentation ablation: generative models (cGAN, DDPM, TTS, SmolLM2) over 5 seeds",
    "av-": "audio-visual fusion over RAVDESS video / OpenFace AUs: many systems and seeds",
    "tri-": "three-way fusion on FER2013 + RAVDESS + MELD: three corpora and several networks",
    "fer-": "FER2013 (35,887 images): CNN training, detectors or ensembles",
    "ter-": "text suites: MiniLM encoding or fine-tuning of thousands of sentences",
    "xcorpus-": "leave-one-corpus-out over five corpora with nested selection",
    "xcorpus-face": "a face model over FER2013 PrivateTest or PublicTest: clean and the "
                    "25 degraded cells (~93k predictions)",
    "product-": "latency of the bundled models: 30 warm requests per input and cold starts",
    "ser-ravdess-lda": "fused vector with speed-perturbed copies: about a minute even with --quick",
    "ser-ravdess-": "network training on log-mel (cnn2d, bilstm, wavegram, fercnn) or the "
                    "best-model ensemble: minutes even with --quick",
    "ser-ravdess.yaml": "best-model ensemble (several members, speed-perturbed copies): minutes",
    "ser-savee.yaml": "ensemble with GE2E speaker-encoder states chosen by nested "
                      "leave-one-speaker-out: minutes",
}


def _heavy_reason(name: str) -> str:
    for prefix, reason in sorted(HEAVY.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            return reason
    return ("not known to finish in a few seconds; add it to QUICK in tests/test_configs.py "
            "once it does")


def test_there_are_configs() -> None:
    assert any(p.name == "example-tiny.yaml" for p in FILES)
    assert any(p.parent.name == "models" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_every_config_loads(path: Path) -> None:
    assert explain_config_errors(path) == []
    cfg = load_config(path)
    assert cfg.suite and cfg.task.modality and cfg.data.corpus


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_quick_run(path: Path, tmp_path: Path, request: pytest.FixtureRequest,
                   monkeypatch: pytest.MonkeyPatch, shared_cache) -> None:
    name = _name(path)
    if name not in QUICK:
        pytest.skip(f"{name}: heavy suite: {_heavy_reason(name)}")
    request.getfixturevalue("shared_data")  # skips when the shared corpora are absent
    # the quick subsets' features, shared with tests/recipes/test_speech.py's quick runs
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache("speech-quick")))
    monkeypatch.chdir(tmp_path)  # nothing is written into the checkout
    results = tmp_path / "results"
    code = run(["-q", "bench", "--config", str(path), "--quick", "--results", str(results)])
    assert code == 0
    suite = load_config(path).suite
    res = json.loads((results / f"{suite}-quick.json").read_text())
    assert res["suite"] == f"{suite}-quick" and 0 <= res["metrics"]["ua"]["mean"] <= 1
    assert (results / f"{suite}-quick.md").is_file()
    assert list(results.glob("*.png"))


CARDS = [p for p in FILES if p.parent.name == "models"
         and (load_config(p).output.card is not None)]


@pytest.mark.parametrize("path", CARDS, ids=_name)
def test_card_facts_resolve(path: Path) -> None:
    """A model config's card quotes committed results that exist, carry its metrics and, for
    the face models (one model's weights measured through the predictor), measured that very
    model: the ``model`` a reference names is among the result's ``models``."""
    from emofuse.recipes import card_facts

    cfg = load_config(path)
    facts = card_facts(cfg.output.card)
    for ref in cfg.output.card.cross_corpus:
        if cfg.task.modality == "face":
            assert ref.model, f"{_name(path)}: {ref.results} names no model"
    for q in facts.get("cross_corpus_results", {}).values():
        assert q["metrics"]
