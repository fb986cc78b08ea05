"""Suite ``xcorpus-face`` (``configs/xcorpus-face.yaml``): how the face models a user gets hold
up outside FER2013's PrivateTest.

For each model (bundled names or model folders, run through the product's own predictor):

1. **Clean**: FER2013 PrivateTest, every image as ``emofuse predict`` feeds a ready-made crop.
2. **Degradation curves** on the same images: blur, JPEG quality, low resolution, low light and
   rotation (:mod:`emofuse.media.degrade`), each at the levels of the config (fixed before any
   figure was seen); accuracy, UA, macro-F1 and ECE per level.
3. **Real video**: the faces in the real sample clips of ``shared/`` (RAVDESS actor 01, CREMA-D
   actor 1001), frames sampled, main face, attention pooling over frames (the product's video
   path); the classes a clip has and the model lacks are reported and dropped.

Calibration: one temperature per model, fitted on FER2013 PublicTest (the validation part);
ECE (15 bins) before and after it for every cell. PrivateTest and the clips choose nothing.

``eval_split: PublicTest`` (``configs/xcorpus-face-val.yaml``) measures the same cells on
PublicTest instead, for choosing between models on the validation part: PrivateTest is not read,
the clips are skipped, and the temperature is still fitted on PublicTest (the same images, so
ECE after it is optimistic there; it only serves the model choice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from .. import protocols
from ..config import Params
from ..corpora import Record
from ..errors import DataError
from ..evaluate.calibration import apply_temperature, ece, fit_temperature
from ..evaluate.metrics import classification_metrics, summarise
from ..media.degrade import KINDS, UNITS, degrade_image
from ._common import class_list, load_records
from ._suite import Suite
from .face import clip_records

__all__ = ["XcorpusFace", "XcorpusFaceParams", "xcorpus_face"]


class FaceQuick(Params):
    """What a smoke run keeps."""

    per_class: int = Field(default=12, gt=0)   #: images per class of PublicTest / PrivateTest
    levels: int = Field(default=2, gt=0)       #: first levels of each degradation
    clips: int = Field(default=2, ge=0)        #: clips
    fps: float = Field(default=1.0, gt=0)


class XcorpusFaceParams(Params):
    """``model.params`` of ``xcorpus-face``."""

    #: bundled model names or model folders, each through its product predictor
    models: list[str] = ["face"]
    #: degradation kind -> levels (units: :data:`emofuse.media.degrade.UNITS`)
    degradations: dict[str, list[float]] = {
        "blur": [0.5, 1.0, 1.5, 2.0, 3.0],
        "jpeg": [75, 50, 30, 15, 5],
        "downscale": [32, 24, 16, 12, 8],
        "low_light": [0.6, 0.4, 0.25, 0.15, 0.08],
        "rotate": [5, 10, 20, 30, 45],
    }
    fps: float = Field(default=5.0, gt=0)      #: clip frames sampled per second
    bins: int = Field(default=15, gt=1)        #: ECE bins
    seed: int = 0                              #: low-light noise
    #: the part measured: PrivateTest (the test part) or PublicTest (the validation part, for
    #: choosing between models; no clips, temperature fitted on the same images)
    eval_split: Literal["PrivateTest", "PublicTest"] = "PrivateTest"
    quick: FaceQuick = FaceQuick()

    def model_post_init(self, _: Any) -> None:
        unknown = sorted(set(self.degradations) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown degradation(s) {unknown}; known: {', '.join(KINDS)}")


class XcorpusFace(Suite, name="xcorpus-face", modality="face",
                  params={"model": XcorpusFaceParams}):
    """Face models outside FER2013's PrivateTest: degradation curves (blur, JPEG, low
    resolution, low light, rotation) and the faces of real video clips, through the product's
    predictor; temperature fitted on PublicTest, ECE before and after per cell"""

    def body(self) -> dict[str, Any]:
        p: XcorpusFaceParams = self.p
        quick, log = self.quick, self.log
        on_val = p.eval_split == "PublicTest"
        val, test, classes = self._fer_parts(p)
        clips = [] if on_val else clip_records(self.cfg)[: p.quick.clips if quick else None]
        kinds = {k: list(v)[: p.quick.levels] if quick else list(v)
                 for k, v in p.degradations.items()}
        log(f"PublicTest {len(val[1])}, {p.eval_split} {len(test[1])} images; "
            f"{len(clips)} clips; models {p.models}"
            + ("; measured on PublicTest (the validation part) for the model choice only: "
               "the temperature is fitted on the same PublicTest images" if on_val else ""))
        metrics: dict[str, Any] = {}
        models: dict[str, Any] = {}
        first: dict[str, Any] | None = None
        for name in p.models:
            out = _measure(name, val, test, classes, kinds, clips, p,
                           fps=p.quick.fps if quick else p.fps, log=log)
            models[name] = out
            sfx = "" if first is None else f"_{_slug(name)}"
            first = first or out
            metrics.update(_metrics(out, sfx))
        assert first is not None
        png = _plot(models, kinds, split=p.eval_split)
        return self._finish(first, classes, metrics, models, kinds, png, split=p.eval_split)

    def _fer_parts(self, p: XcorpusFaceParams):
        """``(crops, y)`` of PublicTest and of the measured part (PrivateTest, or PublicTest
        again with ``eval_split: PublicTest``: PrivateTest is then not read) and the
        classes."""
        from ..features.face_crops import load_faces

        _, records = load_records(self.cfg)
        split = protocols.official_split(records, allow_leak=True)
        classes = class_list(records, self.cfg.data.labels)
        parts = []
        for part in ("val",) if p.eval_split == "PublicTest" else ("val", "test"):
            recs = split.select(records, part)
            if self.quick:
                recs = _per_class(recs, p.quick.per_class)
            crops, kept, skipped = load_faces(recs, side=48, detect=False)
            if skipped:
                raise DataError(None, f"{len(skipped)} FER2013 images could not be read "
                                f"(e.g. {skipped[0]['path']}: {skipped[0]['reason']})")
            parts.append((crops, np.array([classes.index(r.label) for r in kept])))
        return parts[0], parts[-1], classes

    def _finish(self, first: Mapping[str, Any], classes: Sequence[str],
                metrics: dict[str, Any], models: Mapping[str, Any],
                kinds: Mapping[str, Sequence[float]], png: Path, *, split: str
                ) -> dict[str, Any]:
        from ..evaluate.results import build_result

        m = first["clean"]["metrics"]
        corpus = "fer2013 PrivateTest + real sample clips"
        protocol = ("prediction only: FER2013 PrivateTest clean and degraded; the real clips of "
                    "shared/ (RAVDESS actor 01, CREMA-D actor 1001); temperature fitted on "
                    "PublicTest")
        if split == "PublicTest":
            corpus = "fer2013 PublicTest (validation part)"
            protocol = ("prediction only, for the model choice: FER2013 PublicTest clean and "
                        "degraded; temperature fitted on the same PublicTest images (ECE after "
                        "it optimistic); no clips; PrivateTest not read")
        per_class = {c: {k: m["per_class"][c][k] for k in m["per_class"][c]} for c in classes}
        return build_result(
            suite=self.cfg.suite, corpus=corpus, protocol=protocol,
            classes=list(classes), metrics=metrics, per_class=per_class,
            confusion=m["confusion"], seeds=[0], started=self.timer.started,
            duration_s=self.timer.seconds, models={k: _summary(v) for k, v in models.items()},
            degradations={k: {"levels": list(v), "unit": UNITS[k]} for k, v in kinds.items()},
            curves_png=str(png), notes=_notes(models, kinds, png, split=split))


xcorpus_face = XcorpusFace.run


# -- measuring one model ---------------------------------------------------------------------


def _measure(name: str, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
             classes: Sequence[str], kinds: Mapping[str, Sequence[float]],
             clips: Sequence[Record], p: XcorpusFaceParams, *, fps: float, log: Any
             ) -> dict[str, Any]:
    from ..inference import load
    from ..inference.card import model_path

    folder = model_path(name)
    pred = load(folder)
    missing = [c for c in classes if c not in pred.labels]
    if missing:
        raise DataError(folder, f"face model lacks FER2013 classes {missing}")
    order = [pred.labels.index(c) for c in classes]

    def proba(imgs: Sequence[np.ndarray]) -> np.ndarray:
        return _crop_proba(pred, imgs)[:, order]

    t = fit_temperature([proba(list(val[0]))], [val[1]])
    clean = _cell(proba(list(test[0])), test[1], classes, t, p.bins)
    log(f"[{name}] T {t:g}; clean {p.eval_split} accuracy {100 * clean['accuracy']:.2f}, "
        f"ECE {100 * clean['ece']:.2f} -> {100 * clean['ece_ts']:.2f}")
    curves: dict[str, list[dict[str, Any]]] = {}
    for kind, levels in kinds.items():
        for level in levels:
            imgs = [degrade_image(x, kind=kind, level=level, seed=p.seed + i)
                    for i, x in enumerate(test[0])]
            cell = _cell(proba(imgs), test[1], classes, t, p.bins)
            cell.pop("metrics")
            curves.setdefault(kind, []).append({"level": level, **cell})
        log(f"[{name}] {kind}: " + ", ".join(f"{c['level']:g} {100 * c['accuracy']:.1f}"
                                              for c in curves[kind]))
    if degraded := _degraded(curves):
        log(f"[{name}] mean accuracy over the {len(degraded)} degraded cells "
            f"{100 * float(np.mean(degraded)):.2f}")
    video = _clips(pred, clips, classes, order, t, p.bins, fps=fps)
    log(f"[{name}] clips: {video['right']}/{video['n']} right")
    return {"folder": str(folder), "weights_sha256": _weights_sha(folder), "temperature": t,
            "clean": clean, "curves": curves, "clips": video}


def _weights_sha(folder: Path) -> str | None:
    """The ``weights_sha256`` of the card in ``folder`` (what a model card quoting this result
    compares with its own)."""
    import json

    try:
        return json.loads((Path(folder) / "card.json").read_text(encoding="utf-8")
                          ).get("weights_sha256")
    except (OSError, ValueError):
        return None


def _crop_proba(pred: Any, imgs: Sequence[np.ndarray], batch: int = 256) -> np.ndarray:
    """Probabilities of images handed over as ready-made crops, exactly as
    ``predictor.predict(img, detect="never")`` computes them, in batches."""
    from ..models.face_runtime import predict_proba

    out = []
    for i in range(0, len(imgs), batch):
        crops = np.stack([pred.whole_image_crop(x) for x in imgs[i:i + batch]])
        out.append(predict_proba(pred.net, crops, tta=pred.tta))
    return np.concatenate(out).astype(np.float64)


def _cell(proba: np.ndarray, y: np.ndarray, classes: Sequence[str], t: float, bins: int
          ) -> dict[str, Any]:
    m = classification_metrics(y, proba.argmax(1), classes=classes, proba=proba)
    return {"n": int(len(y)), "accuracy": m["accuracy"], "ua": m["ua"],
            "macro_f1": m["macro_f1"], "ece": ece(proba, y, bins=bins),
            "ece_ts": ece(apply_temperature(proba, t), y, bins=bins), "metrics": m}


def _clips(pred: Any, clips: Sequence[Record], classes: Sequence[str], order: Sequence[int],
           t: float, bins: int, *, fps: float) -> dict[str, Any]:
    """Each clip through the product's video path: frames at ``fps``, the main face of each
    frame, attention pooling over the frames."""
    from ..inference.video import attention_pool, face_frames, frames_per_second, main_face
    from ..media import probe_video

    items, probs, ys, dropped = [], [], [], []
    for r in clips:
        if r.label not in classes:
            dropped.append({"clip": Path(r.video).name, "label": r.label})
            continue
        rate = frames_per_second(probe_video(r.video).duration, fps)
        frames = [out for _, _, out in face_frames(pred, r.video, fps=rate)]
        with_face = [main_face(o.faces) for o in frames if o.faces]
        item = {"clip": Path(r.video).name, "true": r.label, "frames": len(frames),
                "frames_with_face": len(with_face)}
        if with_face:
            fp = np.array([[f.probabilities[pred.labels[j]] for j in order] for f in with_face])
            pooled, _ = attention_pool(fp)
            probs.append(pooled)
            ys.append(classes.index(r.label))
            item.update(pred=classes[int(np.argmax(pooled))],
                        confidence=round(float(np.max(pooled)), 4))
        items.append(item)
    out: dict[str, Any] = {"n": len(ys), "right": int(sum(it.get("pred") == it["true"]
                                                          for it in items)),
                           "items": items, "dropped": dropped}
    if ys:
        P, Y = np.array(probs), np.array(ys)
        out.update(accuracy=float(np.mean(P.argmax(1) == Y)), ece=ece(P, Y, bins=bins),
                   ece_ts=ece(apply_temperature(P, t), Y, bins=bins))
    return out


# -- data ------------------------------------------------------------------------------------


def _per_class(records: Sequence[Record], n: int) -> list[Record]:
    seen: dict[str | None, int] = {}
    out = []
    for r in records:
        if seen.get(r.label, 0) < n:
            seen[r.label] = seen.get(r.label, 0) + 1
            out.append(r)
    return out


# -- report ----------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return Path(name).name.replace("-", "_")


def _metrics(out: Mapping[str, Any], sfx: str) -> dict[str, Any]:
    """Clean cell as scalars; each degradation as one metric whose ``per_fold`` lists its
    levels in order; the clips."""
    c = out["clean"]
    m = {f"{k}{sfx}": summarise([c[k]]) for k in ("accuracy", "ua", "macro_f1", "ece", "ece_ts")}
    for kind, cells in out["curves"].items():
        for k in ("accuracy", "ece_ts"):
            m[f"{kind}_{k}{sfx}"] = summarise([cell[k] for cell in cells])
    if degraded := _degraded(out["curves"]):   # mean over every degraded cell (per_fold: in order)
        m[f"degraded_accuracy{sfx}"] = summarise(degraded)
    v = out["clips"]
    if "accuracy" in v:
        m.update({f"clips_{k}{sfx}": summarise([v[k]]) for k in ("accuracy", "ece", "ece_ts")})
    return m


def _degraded(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[float]:
    """Accuracy of every degraded cell, kind by kind in config order."""
    return [cell["accuracy"] for cells in curves.values() for cell in cells]


def _summary(out: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in out["clean"].items() if k != "metrics"}
    return {**{k: v for k, v in out.items() if k != "clean"}, "clean": clean}


def _plot(models: Mapping[str, Any], kinds: Mapping[str, Sequence[float]], *,
          split: str = "PrivateTest") -> Path:
    from ..evaluate.plots import plot_curves
    from ..evaluate.results import results_dir

    name, out = next(iter(models.items()))
    curves = {k: [(c["level"], 100 * c["accuracy"]) for c in out["curves"][k]] for k in kinds}
    return plot_curves(curves, results_dir() / "xcorpus-face-curves.png",
                       title=f"{name}: FER2013 {split} accuracy under degradation",
                       xlabel="level", ylabel="accuracy %",
                       reference=100 * out["clean"]["accuracy"])


def _notes(models: Mapping[str, Any], kinds: Mapping[str, Sequence[float]], png: Path, *,
           split: str = "PrivateTest") -> str:
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    lines = [("**Measured on FER2013 PublicTest, the validation part, for the model choice "
              "only** (`eval_split: PublicTest`): the temperature is fitted on the same "
              "PublicTest images, so ECE after it is optimistic; no clips; PrivateTest is not "
              "read."), ""] if split == "PublicTest" else []
    lines += ["Each model runs through its product predictor (`emofuse.inference.load`): a "
             "FER2013 image is a ready-made crop (no detection, as `emofuse predict` treats "
             "images up to 96 px); clips go through the video path (faces detected per frame, "
             "main face, attention pooling). The temperature of each model is fitted on "
             "PublicTest; PrivateTest and the clips choose nothing. Degradation levels were "
             "fixed before any figure was seen. In the metrics table, `<kind>_accuracy` and "
             "`<kind>_ece_ts` list the levels in order in `per_fold`. Levels: "
             + "; ".join(f"{k}: {', '.join(f'{v:g}' for v in kinds[k])} ({UNITS[k]})"
                         for k in kinds) + ".", ""]
    for name, out in models.items():
        c, v = out["clean"], out["clips"]
        lines += [f"### {name} (T = {out['temperature']:g})", "",
                  "| cell | level | n | accuracy | UA | macro-F1 | ECE | ECE after T |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| clean | - | {c['n']} | {pct(c['accuracy'])} | {pct(c['ua'])} | "
                  f"{pct(c['macro_f1'])} | {pct(c['ece'])} | {pct(c['ece_ts'])} |"]
        for kind in kinds:
            for cell in out["curves"][kind]:
                lines.append(f"| {kind} | {cell['level']:g} | {cell['n']} | "
                             f"{pct(cell['accuracy'])} | {pct(cell['ua'])} | "
                             f"{pct(cell['macro_f1'])} | {pct(cell['ece'])} | "
                             f"{pct(cell['ece_ts'])} |")
        if degraded := _degraded(out["curves"]):
            lines.append(f"| mean of the {len(degraded)} degraded cells | - | - | "
                         f"{pct(float(np.mean(degraded)))} | - | - | - | - |")
        if "accuracy" in v:
            lines.append(f"| real clips | - | {v['n']} | {pct(v['accuracy'])} | - | - | "
                         f"{pct(v['ece'])} | {pct(v['ece_ts'])} |")
        drop = ", ".join(f"{d['clip']} ({d['label']})" for d in v["dropped"]) or "none"
        lines += ["", f"Clips: {v['right']}/{v['n']} right; dropped (class not in the model): "
                      f"{drop}. " + "; ".join(f"{it['clip']} {it['true']} -> {it.get('pred')}"
                                              for it in v["items"]), ""]
    lines += [f"![degradation curves]({png.name})"]
    return "\n".join(lines)
