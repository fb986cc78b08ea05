"""Text predictor: loading a model folder, predictions on strings and files, bad input."""

from __future__ import annotations


import pytest

from emofuse.errors import DataError
from emofuse.models import build_model
from emofuse.inference.text import TextPredictor, check_text
from emofuse.train import save_model

LABELS = ["happy", "sad", "angry"]


def _card(name: str, params: dict, **extra) -> dict:
    return {"task": "text", "labels": LABELS, "multilabel": False,
            "features": {"urls": True, "mentions": True, "markup": True, "emoji": "words"},
            "model": {"name": name, "params": params}, "max_len": 32,
            "data": {"corpus": "test"}, "protocol": {"kind": "none"}, "metrics": {},
            **extra}


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    params = {"in_dim": 384, "n_classes": 3, "hidden": 8}
    folder = tmp_path_factory.mktemp("mlp")
    save_model(folder, build_model("minilm_mlp", **params), _card("minilm_mlp", params))
    return folder


@pytest.fixture(scope="module")
def finetune_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    params = {"n_classes": 3, "multilabel": True}
    folder = tmp_path_factory.mktemp("ft")
    module = build_model("minilm_finetune", pretrained=False, **params)
    save_model(folder, module, _card("minilm_finetune", params, multilabel=True,
                                     thresholds=[0.5, 0.5, 0.0]))
    return folder


BAD = {
    "empty": "",
    "whitespace": " \t\n ",
    "huge": "so happy today! " * 65_536,                      # 1 MiB
    "invalid utf-8": b"caf\xe9 \xff\xfe is great",
    "emoji only": "😂😂🎉",
    "mixed scripts": "我很高兴 today очень рад",
    "control chars": "ok\x00\x07 fine",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_gives_a_prediction_with_a_warning(mlp_dir, kind):
    pred = TextPredictor.load(mlp_dir).analyse([BAD[kind]])[0]
    assert pred.label in LABELS
    assert abs(sum(pred.scores.values()) - 1) < 1e-3
    if kind != "control chars":
        assert pred.warnings, kind
    if kind == "huge":
        assert "truncated" in pred.warnings[0]


def test_check_text():
    assert check_text("fine text") == ("fine text", [])
    text, notes = check_text("x" * 10, max_chars=4)
    assert text == "xxxx" and "truncated" in notes[0]
    _, notes = check_text("caf\udce9")                        # surrogate-escaped byte
    assert "invalid UTF-8" in notes[0]
    assert "mixed scripts" in check_text("Je suis très triste 我很难过")[1][0]
    (note,) = check_text("我很难过")[1]
    assert "non-Latin" in note and "unreliable" in note
    with pytest.raises(DataError):
        check_text(42)  # type: ignore[arg-type]


def test_text_not_in_english_is_flagged():
    """Latin-script text whose words are mostly outside the encoder's English vocabulary."""
    from emofuse.inference.text import MIN_WORDS, english_words

    _, notes = check_text("Jestem bardzo szczęśliwy, że cię dzisiaj widzę.")
    assert len(notes) == 1 and notes[0].startswith("not English? only")
    assert "unreliable" in notes[0]
    assert check_text("I can't believe we finally won the game tonight!")[1] == []
    assert check_text("Dziękuję bardzo!")[1] == []                   # under MIN_WORDS words
    assert english_words("Naïve café owners smile") == (4, 4)         # accents as the encoder
    assert english_words("Dzień dobry pani Kasiu") == (0, MIN_WORDS)


def test_batch_with_good_and_bad_items(mlp_dir):
    preds = TextPredictor.load(mlp_dir).analyse(["I love it", "", b"\xff"])
    assert len(preds) == 3 and not preds[0].warnings and preds[1].warnings


def test_protocol_predict_sums_to_one_with_warnings(mlp_dir):
    from emofuse.inference import Predictor, load

    p = load(mlp_dir)
    assert isinstance(p, TextPredictor) and isinstance(p, Predictor) and p.modality == "text"
    out = p.predict("")
    assert abs(out.probabilities.sum() - 1) < 1e-9 and "empty text" in out.warnings[0]


def test_multilabel_model_uses_thresholds(finetune_dir):
    p = TextPredictor.load(finetune_dir)
    assert p.multilabel
    pred = p.analyse(["what a day"])[0]
    assert "angry" in pred.labels                             # threshold 0: always on


def test_predict_file(mlp_dir, tmp_path):
    f = tmp_path / "lines.txt"
    f.write_bytes(b"I am happy\n\n   \nso sad \xff today\n\xf0\x9f\x98\x82\n")
    preds = TextPredictor.load(mlp_dir).analyse_file(f)
    assert len(preds) == 3
    assert any("invalid UTF-8" in w for w in preds[1].warnings)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(DataError, match="no non-empty line"):
        TextPredictor.load(mlp_dir).analyse_file(empty)
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(DataError, match="binary"):
        TextPredictor.load(mlp_dir).analyse_file(binary)


def test_not_a_text_model(tmp_path):
    card = _card("minilm_mlp", {"in_dim": 4, "n_classes": 3}, task="speech")
    save_model(tmp_path, build_model("minilm_mlp", in_dim=4, n_classes=3), card)
    with pytest.raises(DataError, match="not a text model"):
        TextPredictor.load(tmp_path)


@pytest.mark.parametrize("hidden, multilabel", [(8, False), (0, False), (8, True)])
def test_numpy_head_matches_the_torch_module(tmp_path, hidden, multilabel):
    import numpy as np
    import torch

    from emofuse.models.text import array_loader, predict_module

    torch.manual_seed(1)
    params = {"in_dim": 384, "n_classes": 3, "hidden": hidden, "multilabel": multilabel}
    save_model(tmp_path, build_model("minilm_mlp", **params), _card("minilm_mlp", params))
    p = TextPredictor.load(tmp_path)
    assert p.head is not None and p._module is None            # no torch module built
    x = np.random.default_rng(0).standard_normal((20, 384)).astype(np.float32) * 3
    want = predict_module(p.network, array_loader(x))          # built on first use
    assert np.abs(p.head.proba(x) - want).max() < 1e-5
    assert p.network.hparams.in_dim == p.in_dim == 384


def test_weights_that_do_not_fit_the_card(tmp_path):
    params = {"in_dim": 384, "n_classes": 3, "hidden": 8}
    save_model(tmp_path, build_model("minilm_mlp", in_dim=384, n_classes=3, hidden=16),
               _card("minilm_mlp", params))
    with pytest.raises(DataError, match="do not fit.*net.1.weight"):
        TextPredictor.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(DataError, match="checksum"):
        TextPredictor.load(tmp_path)
