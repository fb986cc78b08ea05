"""Model export: safetensors + card.json round trip, card validation, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from emofuse import __version__  # noqa: E402
from emofuse.errors import DataError  # noqa: E402
from emofuse.models.checkpoint import (CARD_FILE, MODEL_FILE, load_model,  # noqa: E402
                                      save_model)

CARD = {"labels": ["neutral", "happy", "sad", "angry"],
        "features": {"name": "mfcc_stats", "version": 1, "n_mfcc": 20},
        "data": {"corpus": "ravdess", "items": 672},
        "protocol": {"kind": "speaker_kfold", "k": 3, "seed": 0},
        "metrics": {"uar": 0.71, "wa": 0.74, "per_fold": [0.7, 0.72, float("nan")]},
        "notes": "kept as given"}


def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4))
    net(torch.randn(8, 6))  # moves BatchNorm's running statistics away from their defaults
    return net


def test_round_trip_is_exact(tmp_path: Path) -> None:
    net = model()
    assert save_model(tmp_path / "m", net, CARD) == tmp_path / "m"
    state, card = load_model(tmp_path / "m")
    expected = net.state_dict()
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        assert state[k].dtype == v.dtype and torch.equal(state[k], v), k
    assert state["1.num_batches_tracked"].dtype == torch.int64
    fresh = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4))
    fresh.load_state_dict(state)
    x = torch.randn(3, 6)
    assert torch.equal(fresh.eval()(x), net.eval()(x))
    # the card keeps what was given and adds provenance
    assert card["labels"] == CARD["labels"] and card["notes"] == "kept as given"
    assert card["emofuse_version"] == __version__ and card["torch_version"] == torch.__version__
    assert card["created"].endswith("+00:00") and card["num_parameters"] == sum(
        v.numel() for v in expected.values())
    assert len(card["weights_sha256"]) == 64
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CARD_FILE, MODEL_FILE]


def test_state_dict_with_shared_and_odd_tensors(tmp_path: Path) -> None:
    w = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    state = {"a": w, "tied": w, "t": w.t(), "flag": torch.tensor([True, False]),
             "half": torch.ones(2, dtype=torch.bfloat16)}
    save_model(tmp_path, state, CARD)
    loaded, _ = load_model(tmp_path)
    for k, v in state.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype, k


@pytest.mark.parametrize(("card", "expected"), [
    ({k: v for k, v in CARD.items() if k not in ("labels", "metrics")},
     "missing required keys: labels, metrics"),
    ({**CARD, "labels": ["happy", "happy"]}, "distinct label names"),
    ({**CARD, "labels": []}, "distinct label names"),
    ({**CARD, "features": "mfcc"}, "features must be a mapping"),
    ({**CARD, "metrics": {"uar": "good"}}, "metrics must be numbers"),
    ({**CARD, "data": {"path": Path("/x")}}, "not JSON-serialisable"),
])
def test_card_is_validated(tmp_path: Path, card: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        save_model(tmp_path / "m", model(), card)
    assert not (tmp_path / "m" / CARD_FILE).exists()


def test_only_tensors_are_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'step' is of type int, not a tensor"):
        save_model(tmp_path, {"w": torch.ones(2), "step": 3}, CARD)
    with pytest.raises(ValueError, match="non-empty mapping"):
        save_model(tmp_path, {}, CARD)


def saved(tmp_path: Path) -> Path:
    return save_model(tmp_path / "m", model(), CARD)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="model folder not found"):
        load_model(tmp_path / "absent")
    folder = saved(tmp_path)
    (folder / MODEL_FILE).unlink()
    with pytest.raises(DataError, match=f"{MODEL_FILE}: weights file missing"):
        load_model(folder)
    (folder / CARD_FILE).unlink()
    with pytest.raises(DataError, match=f"{CARD_FILE}: model card missing"):
        load_model(folder)


def test_corrupt_weights_give_a_clear_error(tmp_path: Path) -> None:
    folder = saved(tmp_path)
    weights = folder / MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit in the tensor data: caught by the card's checksum
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="do not match the checksum") as info:
        load_model(folder)
    assert info.value.path == str(weights)
    # without a checksum, a truncated file is still reported as unreadable, not a traceback
    card = json.loads((folder / CARD_FILE).read_text())
    del card["weights_sha256"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    weights.write_bytes(bytes(data[:40]))
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_model(folder)
    weights.write_bytes(b"\x80\x04 a pickle is never loaded")
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_model(folder)


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "invalid JSON at line 1, column 2"),
    ("[1, 2]", "must be a JSON object"),
    ('{"labels": ["a"]}', "missing required keys: features, data, protocol, metrics"),
])
def test_corrupt_card_gives_a_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    folder = saved(tmp_path)
    (folder / CARD_FILE).write_text(text)
    with pytest.raises(DataError, match=expected) as info:
        load_model(folder)
    assert info.value.path == str(folder / CARD_FILE)


def test_same_tensors_same_bytes_and_hash(tmp_path: Path) -> None:
    """The safetensors writer orders its header's keys differently from one call (and process)
    to the next; the saved header is canonical, so the same weights hash the same."""
    import subprocess
    import sys

    code = ("import sys, torch; from torch import nn; from emofuse.models.checkpoint import "
            "save_model; torch.manual_seed(0); net = nn.Sequential(nn.Linear(6, 5), "
            "nn.ReLU(), nn.Linear(5, 4)); save_model(sys.argv[1], net, "
            "{'labels': ['a', 'b', 'c', 'd'], 'features': {}, 'data': {}, 'protocol': {}, "
            "'metrics': {}})")
    outs = [tmp_path / f"m{i}" for i in range(3)]
    for out in outs:
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    blobs = {(o / MODEL_FILE).read_bytes() for o in outs}
    assert len(blobs) == 1
    hashes = {json.loads((o / CARD_FILE).read_text())["weights_sha256"] for o in outs}
    assert len(hashes) == 1
    blob = blobs.pop()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    assert list(header) == sorted(header) and header["__metadata__"]["format"] == "pt"
    load_model(outs[0])                                # still a valid file, hash checked
