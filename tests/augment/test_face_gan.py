"""cgan_face: fit on a handful of faces, counts/classes/shapes, reproducibility, weights and the
manifest round trip, the sample grid, and the ``emofuse augment face`` command."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from emofuse.augment import build_generator, list_generators, load_set
from emofuse.augment.face import CGANFace, make_face_set
from emofuse.augment.manifest import to_records
from emofuse.cli import app
from emofuse.errors import DataError

CLASSES = ["angry", "disgust", "happy"]


def _faces(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % len(CLASSES)
    x = rng.integers(0, 80, (n, 48, 48)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, 6 + 12 * c:10 + 12 * c] = 230
    return x, y


@pytest.fixture(scope="module")
def gen() -> CGANFace:
    x, y = _faces()
    return build_generator("cgan_face", iterations=3, batch_size=4, width=4).fit_arrays(
        x, y, CLASSES, ids=[f"Training_{i}" for i in range(len(x))], seed=0)


def test_registered():
    assert "cgan_face" in list_generators()


def test_generate_counts_shapes_and_seed(gen):
    items = gen.generate({"disgust": 3, "happy": 2}, seed=5)
    assert [it.label for it in items] == ["disgust"] * 3 + ["happy"] * 2
    assert gen.last_images.shape == (5, 48, 48) and gen.last_images.dtype == np.uint8
    a, _ = gen.sample({"angry": 4}, seed=1)
    b, _ = gen.sample({"angry": 4}, seed=1)
    c, _ = gen.sample({"angry": 4}, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_set_on_disk_and_weights_round_trip(gen, tmp_path):
    sset = make_face_set(gen, {c: 2 for c in CLASSES}, tmp_path / "set", seed=0,
                         corpus="fer2013", part="Training")
    back = load_set(tmp_path / "set")
    assert back.modality == "image" and back.counts() == {c: 2 for c in CLASSES}
    assert back.fitted_on["n"] == 12 and back.settings["iterations"] == 3
    recs = to_records(back, folder=tmp_path / "set")
    assert all(r.image and Image.open(r.image).size == (48, 48) for r in recs)
    with pytest.raises(DataError):
        to_records(back, folder=tmp_path / "set", test_ids=["Training_3"])
    assert (tmp_path / "set" / "grid.png").is_file()
    again = CGANFace.load(tmp_path / "set" / "generator")
    assert np.array_equal(again.sample({"happy": 3}, seed=0)[0], gen.sample({"happy": 3},
                                                                            seed=0)[0])
    assert len(sset.items) == 6


def test_unfitted_generator_refuses():
    with pytest.raises(DataError):
        CGANFace().generate({"happy": 1})


def test_cli_face(fer_tree_small, tmp_path):
    res = CliRunner().invoke(app, ["augment", "face", "--root", str(fer_tree_small), "--out",
                                   str(tmp_path / "out"), "--fraction", "1", "--per-class", "2",
                                   "--iterations", "2", "--width", "4"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    sset = load_set(tmp_path / "out")
    assert sum(sset.counts().values()) == 14 and "overall" in sset.quality["candidates"]
    assert (tmp_path / "out" / "grid.png").is_file()


@pytest.fixture()
def fer_tree_small(tmp_path):
    root = tmp_path / "fer2013"
    x, _ = _faces(7)
    for i, emo in enumerate(("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")):
        for usage, folder in (("Training", "train"), ("Training", "train"),
                              ("PublicTest", "test"), ("PrivateTest", "test")):
            d = root / folder / emo
            d.mkdir(parents=True, exist_ok=True)
            n = len(list(d.iterdir()))
            Image.fromarray(x[i]).save(d / f"{usage}_{i}{n}{folder}.jpg")
    return root


def test_diff_augment_shapes_and_policies():
    import torch

    from emofuse.augment.online import diff_augment
    from emofuse.errors import ConfigError

    x = torch.linspace(-1, 1, 2 * 48 * 48).reshape(2, 1, 48, 48)
    assert torch.equal(diff_augment(x, policy=[]), x)                      # empty policy: identity
    g = torch.Generator().manual_seed(0)
    out = diff_augment(x, policy=["translation"], generator=g)
    assert out.shape == x.shape
    # a shift keeps pixel values (plus zero padding), it does not invent new ones
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    cut = diff_augment(torch.ones(4, 1, 48, 48), policy=["cutout"], generator=g)
    assert torch.all((cut == 0).sum((1, 2, 3)) == 24 * 24)          # one half-side square each
    col = diff_augment(x, policy=["color"], generator=g)
    assert col.shape == x.shape and not torch.equal(col, x)
    with pytest.raises(ConfigError, match="diffaug"):
        CGANFace(diffaug=("rotate",))
    # settings name the policy and the minibatch-std channel, so cached pools change with them
    s = CGANFace(diffaug=(), mbstd=False).settings()
    assert s["diffaug"] == [] and s["mbstd"] is False
