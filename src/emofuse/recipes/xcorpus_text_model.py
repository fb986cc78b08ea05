"""Suite ``xcorpus-text-model`` (``configs/xcorpus-text-model.yaml``): how the text models a
user gets hold up on corpora they were not trained on.

For each model (a bundled name or a model folder, run through the product's own
:class:`~emofuse.inference.text.TextPredictor`, its cleaning and calibration as shipped) and
each corpus of ``model.params.corpora``: the corpus' test split on the canonical labels
(GoEmotions: as ``xcorpus-text``, a multi-label row kept when all its labels fall in one Ekman
group), scored over the labels the model and the corpus share; the classes dropped on either
side with their counts, and the chance level of what remains. Macro-F1, UA, WA, weighted F1
and ECE (15 bins) per corpus. A corpus the model was trained on (its card's
``training_corpora``, else ``data.corpus``) is marked in-corpus; ``outside_*`` averages the
others. Nothing is fitted: prediction only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config import Params
from ..errors import ConfigError
from ..evaluate.calibration import ece
from ..evaluate.metrics import classification_metrics, summarise
from ._suite import Suite
from .text_params import TextFeatureParams
from .xcorpus_text import load_table

__all__ = ["XcorpusTextModel", "XcorpusTextModelParams", "xcorpus_text_model"]

_FIGURES = ("macro_f1", "ua", "wa", "weighted_f1", "ece")


class XcorpusTextModelParams(Params):
    """``model.params`` of ``xcorpus-text-model``."""

    #: bundled model names or model folders, each through its product predictor
    models: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    #: corpora whose test splits are scored
    corpora: list[str] = Field(default_factory=lambda: ["dair", "meld", "goemotions"],
                               min_length=1)
    #: corpus -> its root folder (default: the shared data)
    roots: dict[str, str | None] = Field(default_factory=dict)
    #: GoEmotions multi-label rows: kept when all labels share one Ekman group, or only
    #: one-label rows (as xcorpus-text)
    goemotions_multilabel: Literal["same_group", "single"] = "same_group"
    bins: int = Field(default=15, gt=0)    #: equal-width ECE bins
    quick_items: int = Field(default=60, gt=0)   #: test items per corpus in a smoke run


def trained_on(card: Mapping[str, Any]) -> list[str]:
    """The corpora a model card says the model was trained on."""
    corpora = card.get("training_corpora")
    if corpora:
        return [str(c) for c in corpora]
    data = str((card.get("data") or {}).get("corpus") or "")
    return [c for c in data.split("+") if c]


def score(predictor: Any, texts: Sequence[str], labels: Sequence[str], *, bins: int = 15
          ) -> dict[str, Any]:
    """``predictor`` on ``texts`` over the labels it shares with them: the classes scored and
    dropped (with counts), chance, macro-F1, UA, WA, weighted F1, ECE, per class, confusion."""
    known = list(predictor.labels)
    shared = [c for c in known if c in set(labels)]
    dropped = dict(sorted(Counter(v for v in labels if v not in shared).items()))
    if len(shared) < 2:
        return {"classes": shared, "dropped_test": dropped, "n": 0}
    keep = [i for i, v in enumerate(labels) if v in shared]
    proba = predictor.predict_proba([texts[i] for i in keep])[:, [known.index(c)
                                                                   for c in shared]]
    proba = proba / np.clip(proba.sum(1, keepdims=True), 1e-12, None)
    y = np.array([shared.index(labels[i]) for i in keep])
    m = classification_metrics(y, proba.argmax(1), classes=shared, proba=proba)
    return {"classes": shared, "dropped_test": dropped,
            "dropped_model": [c for c in known if c not in shared], "n": len(keep),
            "chance_ua": round(1 / len(shared), 6),
            **{k: float(m[k]) for k in _FIGURES if k != "ece"},
            "ece": ece(proba, y, bins=bins), "per_class": m["per_class"],
            "confusion": m["confusion"]}


class XcorpusTextModel(Suite, name="xcorpus-text-model", modality="text",
                       params={"model": XcorpusTextModelParams,
                               "features": TextFeatureParams}):
    """Text models as shipped on the test split of every text corpus (in-corpus marked),
    over the labels each pair shares; macro-F1, UA, WA, weighted F1, ECE"""

    def body(self) -> dict[str, Any]:
        from ..inference import load
        from ..inference.card import model_path
        from ..models.checkpoint import read_card

        p: XcorpusTextModelParams = self.p
        table, loaded = load_table(p.corpora, features=self.cfg.features, roots=p.roots,
                                   goemotions_multilabel=p.goemotions_multilabel,
                                   quick=self.quick, log=self.log)
        tests = {}
        for c in p.corpora:
            rows = table.rows([c], "test")[: p.quick_items if self.quick else None]
            tests[c] = ([table.records[i].text or "" for i in rows],
                        [str(table.labels[i]) for i in rows])
        models: dict[str, Any] = {}
        metrics: dict[str, Any] = {}
        for k, name in enumerate(p.models):
            folder = model_path(name)
            card = read_card(folder)
            if (card.get("task") or card.get("modality")) != "text":
                raise ConfigError(f"model.params.models: {name} ({folder}) is a "
                                  f"{card.get('task') or card.get('modality') or 'unknown'} "
                                  "model, not a text model")
            pred = load(folder)
            inside = trained_on(card)
            cells = {c: {**score(pred, *tests[c], bins=p.bins), "in_corpus": c in inside}
                     for c in p.corpora}
            models[name] = {"folder": str(folder), "weights_sha256": card.get("weights_sha256"),
                            "trained_on": inside, "corpora": cells}
            sfx = "" if k == 0 else f"_{_slug(name)}"
            outside = [c for c in p.corpora if not cells[c]["in_corpus"] and cells[c]["n"]]
            for f in _FIGURES:
                for c in p.corpora:
                    if cells[c]["n"]:
                        metrics[f"{f}_{c}{sfx}"] = summarise([cells[c][f]])
                if outside:
                    metrics[f"outside_{f}{sfx}"] = summarise([cells[c][f] for c in outside])
            if self.log:
                self.log(f"[{name}] trained on {'+'.join(inside) or '?'}: " + "; ".join(
                    f"{c} macro-F1 {100 * v['macro_f1']:.2f} wF1 {100 * v['weighted_f1']:.2f}"
                    for c, v in cells.items() if v["n"]))
        return self._finish(models, metrics, loaded)

    def _finish(self, models: Mapping[str, Any], metrics: dict[str, Any],
                loaded: Mapping[str, Any]) -> dict[str, Any]:
        from ..evaluate.results import build_result

        first = next(iter(models.values()))
        cells = [v for v in first["corpora"].values() if v["n"]]
        classes = list(dict.fromkeys(c for v in cells for c in v["classes"]))
        per_class = {c: next(v["per_class"][c] for v in cells if c in v["per_class"])
                     for c in classes}
        confusion = next(iter(cells))["confusion"] if cells else []
        out = {name: {**m, "corpora": {c: {k: v for k, v in cell.items()
                                           if k not in ("per_class",)}
                                       for c, cell in m["corpora"].items()}}
               for name, m in models.items()}
        return build_result(
            suite=self.cfg.suite,
            corpus="+".join(self.p.corpora),
            protocol="prediction only: each model as shipped on the test split of every corpus, "
                     "over the labels both share; corpora the model was trained on marked "
                     "in-corpus",
            classes=classes, metrics=metrics, per_class=per_class, confusion=confusion,
            seeds=[0], started=self.timer.started, duration_s=self.timer.seconds,
            models=out, loaded=loaded, notes=_notes(models, self.quick))


_ABOUT = ("Each model runs as shipped (the product's text predictor: its cleaning and "
          "temperature) on the *test* split of every corpus, over the canonical labels the "
          "model and the corpus share; the classes dropped on the test side are counted, and "
          "the chance level is that of the classes scored. GoEmotions: a multi-label row is "
          "kept when all its labels fall in one Ekman group (as xcorpus-text). A corpus the "
          "model was trained on (its card) is marked in-corpus; `outside_*` metrics average "
          "the other corpora. ECE: 15 equal-width bins. Prediction only: nothing is fitted "
          "or chosen.")


def _slug(name: str) -> str:
    return name.rstrip("/").replace("/", "_").replace("-", "_")


def _notes(models: Mapping[str, Any], quick: bool) -> str:
    lines = ["**Quick smoke run on a tiny subset; the figures mean nothing.**", ""] if quick \
        else []
    lines += [_ABOUT, ""]
    for name, m in models.items():
        lines += [f"### {name} (trained on {', '.join(m['trained_on']) or 'unknown'})", "",
                  "| corpus | in-corpus | n | classes (chance %) | dropped (test side) | "
                  "macro-F1 | UA | WA | weighted F1 | ECE |", "|---" * 10 + "|"]
        for c, v in m["corpora"].items():
            if not v["n"]:
                lines.append(f"| {c} | {'yes' if v['in_corpus'] else 'no'} | 0 | fewer than "
                             "2 shared classes | | | | | | |")
                continue
            drop = ", ".join(f"{k} {n}" for k, n in v["dropped_test"].items()) or "-"
            lines.append(
                f"| {c} | {'yes' if v['in_corpus'] else 'no'} | {v['n']} | "
                f"{', '.join(v['classes'])} ({100 * v['chance_ua']:.1f}) | {drop} | "
                + " | ".join(f"{100 * v[k]:.2f}" for k in _FIGURES) + " |")
        lines.append("")
    return "\n".join(lines)


#: the ``xcorpus-text-model`` suite: result dict
run_suite = xcorpus_text_model = XcorpusTextModel.run
