"""Cross-validation of a recipe on a user's own data (``emofuse train --data ... --cv``):
the folds (``loso``, ``group-kfold``, ``kfold``), one recipe training per fold, the scores,
and the report (``cv.json``, ``cv.md``, ``cv-confusion.png``) and card summary."""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, parse_config
from ..errors import ConfigError, DataError, EmofuseError

__all__ = ["CV_KINDS", "WITHIN_SPEAKER", "Log", "normalise_cv", "cv_splits", "cross_validate",
           "write_cv_report", "cv_summary", "format_cv"]

#: Cross-validation schemes of ``--cv``.
CV_KINDS: tuple[str, ...] = ("loso", "group-kfold", "kfold")
#: The protocol named on the card and in the CV report of a one-speaker corpus.
WITHIN_SPEAKER = "within-speaker (speaker-dependent)"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None



def normalise_cv(kind: str, folds: int | None = None) -> str:
    """``loso``, ``group-kfold`` or ``kfold`` from a ``--cv`` value (``logo`` and
    ``speaker-kfold`` accepted); raises ``ConfigError`` for anything else, or ``folds`` with
    ``loso``."""
    key = str(kind).strip().lower().replace("_", "-")
    key = {"logo": "loso", "speaker-kfold": "group-kfold", "groupkfold": "group-kfold",
           "k-fold": "kfold"}.get(key, key)
    if key not in CV_KINDS:
        raise ConfigError(f"--cv must be one of {', '.join(CV_KINDS)}, not {kind!r}")
    if key == "loso" and folds is not None:
        raise ConfigError("--folds does not apply to --cv loso (one fold per speaker)")
    return key


def cv_splits(records: Sequence[Any], kind: str, *, k: int | None = None, seed: int = 0,
              speaker_dependent: bool = False, warn: Log | None = None
              ) -> tuple[list[Any], str, bool | None]:
    """The folds of ``kind`` (``loso``, ``group-kfold``, ``kfold``) over ``records``.

    Returns ``(splits, protocol, speaker_dependent)``: the protocol as written in the report,
    and whether a speaker is on both sides of a fold (``None``: speakers unknown).

    Raises
    ------
    ConfigError
        For an unknown ``kind`` or a bad ``k``.
    DataError
        When the data cannot be split that way (too few speakers or items per class).
    """
    from .. import protocols

    warn = warn or _quiet
    key = normalise_cv(kind, k)
    records = list(records)
    speakers = {r.speaker for r in records if r.speaker}
    if k is None:  # default 5, fewer where the data hold fewer (a given --folds is kept)
        smallest = min(collections.Counter(r.label for r in records).values())
        k = max(2, min(5, smallest if key == "kfold" or speaker_dependent else len(speakers)))
    k = int(k)
    if key != "loso" and not 2 <= k <= 100:
        raise ConfigError(f"--folds must be between 2 and 100, not {k}")
    if speaker_dependent and key != "kfold":
        warn(f"--cv {key} needs several speakers; with one speaker the folds are stratified "
             f"{k}-fold over items ({WITHIN_SPEAKER})")
        key = "kfold"
    if key == "kfold":
        splits = _item_kfold(records, k, seed)
        if speaker_dependent:
            return splits, WITHIN_SPEAKER, True
        if not speakers:
            return (splits, (f"stratified {k}-fold over items (speakers unknown: may be "
                             "speaker-dependent)"), None)
        by_id = {r.id: r for r in records}
        repeat = any({by_id[i].speaker for i in s.train} & {by_id[i].speaker for i in s.test}
                     - {None} for s in splits)
        if repeat:
            return (splits, (f"stratified {k}-fold over items (speaker-dependent: speakers "
                             "repeat across train and test)"), True)
        return splits, f"stratified {k}-fold over items", False
    missing = [r.id for r in records if not r.speaker]
    if missing:
        raise DataError(None, f"--cv {key} needs a speaker for every item; {len(missing)} have "
                        f"none (e.g. {missing[0]}): give --speaker-regex, a (?P<speaker>...) "
                        "group in --label-regex or a manifest 'speaker' column, or use --cv "
                        "kfold")
    if len(speakers) < 3:
        raise DataError(None, f"--cv {key} needs at least 3 speakers (one to test, two to train "
                        f"and validate on); there are {len(speakers)}: use --cv kfold")
    if key == "loso":
        splits = protocols.leave_one_speaker_out(records)
        return (splits, f"leave-one-speaker-out ({len(splits)} folds, speaker-independent)",
                False)
    if k > len(speakers):
        raise DataError(None, f"--cv group-kfold with --folds {k} needs at least {k} speakers; "
                        f"there are {len(speakers)}")
    splits = protocols.speaker_kfold(records, k=k, seed=seed)
    by_id = {r.id: r for r in records}
    for s in splits:
        if len({by_id[i].speaker for i in s.train}) < 2:
            raise DataError(None, f"--cv group-kfold with --folds {k}: fold {s.fold} leaves one "
                            "speaker to train on, and the recipe validates on another: use "
                            "fewer folds, more speakers, or --cv kfold")
    return (splits, f"speaker-grouped stratified {k}-fold (speaker-independent)", False)


def _item_kfold(records: Sequence[Any], k: int, seed: int) -> list[Any]:
    """Stratified ``k``-fold over items (speakers ignored)."""
    from sklearn.model_selection import StratifiedKFold

    from ..protocols import Split

    counts = collections.Counter(r.label for r in records)
    small = sorted((n, c) for c, n in counts.items() if n < k)
    if small:
        n, c = small[0]
        raise DataError(None, f"class {c!r} has {n} item(s), fewer than the {k} folds: lower "
                        "--folds or add data")
    labels = [r.label for r in records]
    out = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (tr, te) in enumerate(splitter.split(np.zeros(len(records)), labels), start=1):
        out.append(Split(f"own/kfold/{i}", [records[j].id for j in tr],
                         [records[j].id for j in te], protocol="kfold", fold=i))
    return out


def _val_fraction(base: float, records: Sequence[Any]) -> float:
    """A validation fraction that leaves at least one item of each class on both sides of an
    item-level (stratified) draw: ``base``, raised for tiny classes (at most 0.5)."""
    smallest = min(collections.Counter(r.label for r in records).values(), default=0)
    if smallest == 0 or round(smallest * base) >= 1:
        return base
    return min(0.5, round(0.51 / smallest + 1e-9, 4))


def _item_level(records: Sequence[Any]) -> bool:
    """Whether the recipe's validation draw is per item (no groups: one speaker, or none)."""
    return not any(r.group and not str(r.group).startswith("item:") for r in records)


def _fold_config(cfg: RunConfig, train: Sequence[Any]) -> RunConfig:
    """``cfg`` restricted to the training records of one fold (the recipe draws its own
    validation part from them)."""
    train_ids = [r.id for r in train]
    d = cfg.model_dump(mode="json")
    if _item_level(train):
        d["train"]["val_fraction"] = _val_fraction(cfg.train.val_fraction, train)
    opts = dict(d["data"]["options"])
    opts["only_ids"] = list(train_ids)
    if cfg.data.corpus == "manifest":
        opts["use_split"] = False
    d["data"]["options"] = opts
    d["protocol"] = {"kind": "official", "seed": cfg.protocol.seed}
    return parse_config(d, source=f"{cfg.suite} (one fold)")


def _predict(modality: str, model_dir: Path, records: Sequence[Any]
             ) -> tuple[np.ndarray, list[str], list[Any], list[dict[str, str]]]:
    """``(probabilities, model labels, records scored, skipped)`` of a saved model."""
    skipped: list[dict[str, str]] = []
    if modality == "speech":
        from ..features.cache import FeatureCache
        from ..inference.speech import SpeechPredictor

        pred = SpeechPredictor(model_dir, cache=FeatureCache())
        rows, kept = [], []
        for r in records:
            try:
                rows.append(np.asarray(pred.proba(r.audio or r.video), dtype=np.float64))
                kept.append(r)
            except EmofuseError as exc:
                skipped.append({"id": r.id, "reason": str(exc)})
        labels = list(pred.labels)
        proba = np.stack(rows) if rows else np.zeros((0, len(labels)))
        return proba, labels, kept, skipped
    if modality == "text":
        from ..inference.text import TextPredictor

        pred = TextPredictor.load(model_dir)
        kept = [r for r in records if r.text]
        proba = np.asarray(pred.predict_proba([r.text for r in kept]), dtype=np.float64)
        return proba, list(pred.labels), kept, skipped
    if modality == "face":
        from .face import _features, load_faces, load_predictor, predict_proba

        net, card = load_predictor(model_dir)
        feats = _features({k: v for k, v in card["features"].items()
                           if k in ("side", "detector", "tta")})
        x, kept, skipped = load_faces(list(records), side=int(feats["side"]),
                                      detector=feats["detector"])
        proba = (np.asarray(predict_proba(net, x, tta=feats["tta"]), dtype=np.float64)
                 if len(kept) else np.zeros((0, len(card["labels"]))))
        return proba, list(card["labels"]), list(kept), list(skipped)
    raise ConfigError(f"cross-validation supports speech, face and text, not {modality!r}")


def cross_validate(cfg: RunConfig, records: Sequence[Any], classes: Sequence[str],
                   splits: Sequence[Any], *, protocol: str, speaker_dependent: bool | None,
                   quick: bool = False, suite: str | None = None, log: Log | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg``'s recipe on each fold's training part (train + val ids; the recipe holds
    out its own validation part from them) and score its test part; return a result in the
    results format (``metrics`` mean ± std and per fold, ``per_class`` pooled, summed
    ``confusion``, plus ``folds``: per-fold details).

    Predictions cover every class of ``classes``: a class a fold's model never saw scores 0.
    """
    from ..evaluate.metrics import aggregate_folds, classification_metrics
    from ..evaluate.results import build_result
    from . import get_modality
    from ._common import Timer

    log = log or _quiet
    modality = cfg.task.modality
    recipe = get_modality(modality)
    by_id = {r.id: r for r in records}
    index = {c: i for i, c in enumerate(classes)}
    fold_metrics, folds = [], []
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="emofuse-cv-") as tmp:
        for n, split in enumerate(splits, start=1):
            t0 = time.perf_counter()
            train = [by_id[i] for i in (*split.train, *split.val) if i in by_id]
            test = [by_id[i] for i in split.test if i in by_id and by_id[i].label in index]
            if not train or not test:
                continue
            try:
                model_dir = recipe.train(_fold_config(cfg, train),
                                         out_dir=Path(tmp) / f"fold{n}", quick=quick)
            except EmofuseError as exc:
                raise DataError(None, f"cross-validation fold {split.fold or n} "
                                f"({len(train)} training items): {exc}") from exc
            train_ids = [r.id for r in train]
            proba, labels, kept, skipped = _predict(modality, Path(model_dir), test)
            full = np.zeros((len(kept), len(classes)))
            for j, lab in enumerate(labels):
                if lab in index:
                    full[:, index[lab]] = proba[:, j]
            y = np.array([index[r.label] for r in kept], dtype=np.int64)
            if not len(y):
                raise DataError(None, f"fold {split.fold or n}: no test item could be scored "
                                f"({len(skipped)} skipped)")
            m = classification_metrics(y, full.argmax(1), classes=list(classes), proba=full)
            fold_metrics.append(m)
            speakers = sorted({r.speaker for r in test if r.speaker}, key=str)
            info = {"fold": split.fold or n, "n_train": len(train_ids), "n_test": len(test),
                    "scored": len(y), "skipped": skipped,
                    "test_speakers": speakers if len(speakers) <= 20 else len(speakers),
                    "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"],
                    "missing_classes": [c for c in classes if c not in labels],
                    "seconds": round(time.perf_counter() - t0, 2)}
            folds.append(info)
            who = f"{len(test)} items" + (f", speaker {', '.join(map(str, speakers))}"
                                          if 0 < len(speakers) <= 3 else "")
            log(f"  fold {len(folds)}/{len(splits)} (test: {who}): UA {100 * m['ua']:.2f}, "
                f"WA {100 * m['wa']:.2f}, macro-F1 {100 * m['macro_f1']:.2f} "
                f"({info['seconds']:.0f} s)")
    if not fold_metrics:
        raise DataError(None, "cross-validation: no fold had both training and test items")
    agg = aggregate_folds(fold_metrics)
    extra = dict(extra or {})
    extra.setdefault("notes", _cv_notes(protocol, speaker_dependent, quick))
    return build_result(suite=suite or f"{cfg.suite}-cv", corpus=cfg.data.corpus,
                        protocol=protocol, classes=list(classes), metrics=agg["metrics"],
                        per_class=agg["per_class"], confusion=agg["confusion"],
                        seeds=[cfg.train.seeds[0]], started=timer.started,
                        duration_s=timer.seconds, folds=folds,
                        speaker_dependent=speaker_dependent, modality=modality,
                        data=str(cfg.data.root), quick=quick, **extra)


def _cv_notes(protocol: str, speaker_dependent: bool | None, quick: bool) -> str:
    text = (f"Cross-validation, {protocol}: on every fold the recipe is trained on the "
            "training part (its own validation part drawn from it) and scored once on the test "
            "part. `per_fold` lists the folds; per-class figures and the confusion matrix are "
            "pooled over folds.")
    if speaker_dependent:
        text += (" **Speaker-dependent**: the same speaker is on both sides, so these figures "
                 "overstate how the model does on a new speaker.")
    elif speaker_dependent is None:
        text += " Speakers are unknown: a speaker may be on both sides."
    if quick:
        text += " Quick run (--quick): smoke-test settings, not a measurement."
    return text


def write_cv_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``cv.json``, ``cv.md`` and ``cv-confusion.png`` of a cross-validation result."""
    from ..evaluate.plots import plot_confusion
    from ..evaluate.results import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(result["confusion"], result["classes"], out / "cv-confusion.png",
                         title=f"cross-validation: {result['protocol']}"[:70])
    result = {**result, "confusion_png": png.name}
    paths = []
    for name, text in (("cv.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n"),
                       ("cv.md", render_markdown(result))):
        path = out / name
        _atomic_write(path, text)
        paths.append(path)
    return [*paths, png]


def cv_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The CV figures that go onto the model card."""
    keys = ("ua", "wa", "macro_f1")
    return {"protocol": result["protocol"], "folds": len(result.get("folds") or []),
            "speaker_dependent": result.get("speaker_dependent"),
            "metrics": {k: {"mean": result["metrics"][k]["mean"],
                            "std": result["metrics"][k]["std"],
                            "per_fold": result["metrics"][k]["per_fold"]}
                        for k in keys if k in result["metrics"]},
            "per_class_recall": {c: d["recall"] for c, d in result["per_class"].items()},
            "report": "cv.md", "quick": bool(result.get("quick"))}


def format_cv(result: dict[str, Any]) -> list[str]:
    """Lines that print a CV result: the means ± std, per fold and per-class recall."""
    m = result["metrics"]
    names = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}
    head = "; ".join(f"{names[k]} {100 * m[k]['mean']:.2f} ± {100 * m[k]['std']:.2f}"
                     for k in names if k in m)
    lines = [f"cross-validation, {result['protocol']}: {head}"]
    if "ua" in m:
        lines.append("  UA per fold: " + " / ".join(f"{100 * v:.1f}" for v in m["ua"]["per_fold"]))
    lines.append("  recall per class: " + ", ".join(
        f"{c} {100 * d['recall']:.1f}" for c, d in result["per_class"].items()))
    if result.get("speaker_dependent"):
        lines.append("  speaker-dependent: a speaker is on both sides of the folds; expect "
                     "lower figures on new speakers")
    return lines


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


