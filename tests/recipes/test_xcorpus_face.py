"""Suite xcorpus-face: the bundled face model on degraded PrivateTest images and real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config
from emofuse.evaluate.results import results_to, validate_result
from emofuse.paths import repo_root
from emofuse.recipes.xcorpus_face import XcorpusFace, XcorpusFaceParams, _crop_proba

CONFIG = repo_root() / "configs" / "xcorpus-face.yaml"


def test_batched_crop_probabilities_are_the_predict_path() -> None:
    from emofuse.inference import load, model_path
    from emofuse.media.degrade import degrade_image

    pred = load(model_path("face"))
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(3)]
    imgs.append(degrade_image(imgs[0], kind="downscale", level=16))    # a smaller image
    batch = _crop_proba(pred, imgs)
    for img, p in zip(imgs, batch):
        out = pred.predict(np.stack([img] * 3, -1), detect="auto")
        assert np.allclose(out.probabilities, p, atol=1e-5)


def test_unknown_degradation_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: blur, jpeg"):
        XcorpusFaceParams(degradations={"fog": [1.0]})


@pytest.mark.slow
@pytest.mark.shared_data
def test_quick_suite_runs(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIG, params=XcorpusFace.params)
    with results_to(tmp_path / "out"):
        result = XcorpusFace.run(cfg, quick=True, log=lambda _: None)
    validate_result(result)
    assert Path(result["curves_png"]).parent == tmp_path / "out"
    m = result["metrics"]
    assert 0.4 < m["accuracy"]["mean"] <= 1 and 0 <= m["ece_ts"]["mean"] <= 1
    for kind in ("blur", "jpeg", "downscale", "low_light", "rotate"):
        assert len(m[f"{kind}_accuracy"]["per_fold"]) == 2          # quick: two levels
    face = result["models"]["face"]
    assert face["temperature"] > 0 and face["clean"]["n"] == 7 * 12
    bundled = json.loads((Path(face["folder"]) / "card.json").read_text())
    assert face["weights_sha256"] == bundled["weights_sha256"]   # what a card quoting it checks
    assert face["clips"]["n"] == 2 and "accuracy" not in face["clean"].get("metrics", {})
    assert "| clean |" in result["notes"]
    json.dumps(result)


def test_eval_split_defaults_to_privatetest_and_refuses_others() -> None:
    def params(path: Path) -> XcorpusFaceParams:
        return XcorpusFaceParams(**load_config(path, params=XcorpusFace.params).model.params)

    assert XcorpusFaceParams().eval_split == "PrivateTest"
    assert params(CONFIG).eval_split == "PrivateTest"
    val = params(repo_root() / "configs" / "xcorpus-face-val.yaml")
    assert val.eval_split == "PublicTest"
    assert val.degradations == params(CONFIG).degradations            # the same 25 cells
    assert sum(map(len, val.degradations.values())) == 25
    with pytest.raises(ValueError, match="eval_split"):
        XcorpusFaceParams(eval_split="Training")


def test_quick_suite_on_publictest_reads_no_privatetest(fer_tree: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    """``eval_split: PublicTest`` on a generated tree: only PublicTest images are read, the
    clean and degraded cells are PublicTest's, no clips, the output says it is the validation
    part."""
    from emofuse.features import face_crops

    read: list[str | None] = []
    real = face_crops.load_faces

    def load_faces(records, **kw):
        read.extend(r.split for r in records)
        return real(records, **kw)

    monkeypatch.setattr(face_crops, "load_faces", load_faces)
    monkeypatch.chdir(tmp_path)
    text = (repo_root() / "configs" / "xcorpus-face-val.yaml").read_text()
    path = tmp_path / "val.yaml"
    path.write_text(text.replace("root: null", f"root: {fer_tree}"))
    cfg = load_config(path, params=XcorpusFace.params)
    lines: list[str] = []
    with results_to(tmp_path / "out"):
        result = XcorpusFace.run(cfg, quick=True, log=lines.append)
    validate_result(result)
    face = result["models"]["face"]
    assert set(read) == {"PublicTest"} and len(read) == 7 * 3         # PrivateTest not read
    assert face["clean"]["n"] == 7 * 3 and face["clips"]["n"] == 0   # PublicTest, no clips
    assert all(c["n"] == 7 * 3 for cells in face["curves"].values() for c in cells)
    m = result["metrics"]
    assert len(m["degraded_accuracy"]["per_fold"]) == 5 * 2          # quick: two levels each
    assert np.isclose(m["degraded_accuracy"]["mean"], np.mean(
        [c["accuracy"] for cells in face["curves"].values() for c in cells]))
    assert "PublicTest" in result["corpus"] and "PrivateTest not read" in result["protocol"]
    assert any("temperature is fitted on the same PublicTest images" in t for t in lines)
    assert "validation part, for the model choice only" in result["notes"]
