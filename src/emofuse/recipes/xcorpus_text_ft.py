"""Cross-corpus text emotion recognition with a partly fine-tuned encoder: the ``xcorpus-text``
protocol (:mod:`.xcorpus_text`: leave one corpus out over dair-ai, MELD and GoEmotions, shared
canonical labels, nested LOCO selection, temperature from the training corpora, joint model)
where the nested selection may also choose MiniLM with its top layers fine-tuned.

Suite ``xcorpus-text-ft`` (``configs/xcorpus-text-ft.yaml``). Candidates of every cell: the
frozen-MiniLM grid of ``model.params.grid`` (the heads of ``xcorpus-text``, fitted by the same
code and cached by content, so that its fits are reused), then ``ft top<k>``
(:class:`FineTuneCandidate`: :class:`emofuse.models.text_finetune.FineTunedMiniLM` with the
recipe of ``model.params.finetune``, one fixed recipe, no grid). The rule is
:func:`.xcorpus_text.run_cell`'s: each candidate is fitted on the train split of one training
corpus and scored on the dev split of the other, both ways; the best mean dev macro-F1 wins
(ties: the first, so a frozen head before ``ft``); the temperature comes from the chosen
candidate's out-of-corpus dev probabilities; the chosen candidate is refitted on both training
corpora's train splits and scored once on the held-out corpus' test split. The joint model is
:func:`.xcorpus_text.joint_model`'s (LOCO over all corpora on their dev splits, then the winner
on every train split, each corpus' test split scored).

A fine-tune is keyed by its training texts, targets, classes, recipe and base weights and kept
under ``<cache>/runs/xcorpus-text-ft/`` (trained tensors only), with its probabilities on each
scored part: the single-corpus fine-tunes serve every cell's inner folds, the pair fine-tunes
the cells and the joint model's LOCO folds, and a rerun trains nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ..config import Params
from .text_params import Count, JointParams, NonNegative, Positive, TextFeatureParams, Unit
from .xcorpus_text import TextContext, XcorpusTextSuite, _training_rows

__all__ = ["FineTuneCandidate", "FineTuneParams", "FineTuneSettings", "XcorpusTextFt",
           "run_suite"]

#: Version of the cached fine-tunes (bump when training changes).
_FT_VERSION = "1"
#: fine-tuned models kept in memory (each holds a MiniLM)
_KEEP = 2
_MODELS: OrderedDict[str, Any] = OrderedDict()


class FineTuneSettings(Params):
    """The fine-tuning recipe (``model.params.finetune``): fixed, not a grid."""

    top_layers: Count = 2             #: transformer layers trained (from the top)
    epochs: Count = 2
    batch_size: Count = 32
    max_len: Count = 64               #: tokens per text ([CLS] and [SEP] included)
    lr_encoder: Positive = 5e-5       #: AdamW learning rate of the trained layers
    lr_head: Positive = 1e-3          #: ... and of the linear head
    weight_decay: NonNegative = 0.01
    warmup: Unit = 0.1                #: share of the steps with a linear warm-up
    class_balance: Unit = 0.75        #: class weights count ** -p
    max_train: Count = 12000          #: stratified seeded subsample of the training items
    quick_max_train: Count = 48       #: smoke run (--quick): items, and one epoch


class FineTuneParams(JointParams):
    """``model.params`` of ``xcorpus-text-ft``: those of ``xcorpus-text`` and the recipe of
    the fine-tuned candidate."""

    finetune: FineTuneSettings = Field(default_factory=FineTuneSettings)


@functools.lru_cache(maxsize=4)
def _base_sha(path: str) -> str:
    from ..paths import file_sha256

    return file_sha256(Path(path) / "model.safetensors")


def _digest(meta: dict[str, Any], texts: Sequence[str], y: np.ndarray | None = None) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\x00")
    if y is not None:
        h.update(np.ascontiguousarray(y, np.int64).tobytes())
    return h.hexdigest()[:20]


def _model(folder: Path, num_threads: int | None) -> Any:
    """The fine-tune saved in ``folder`` (the last :data:`_KEEP` stay loaded)."""
    from ..models.text_finetune import FineTunedMiniLM

    key = str(folder)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    m = FineTunedMiniLM.load(folder, num_threads=num_threads)
    _MODELS[key] = m
    while len(_MODELS) > _KEEP:
        _MODELS.popitem(last=False)
    return m


@dataclasses.dataclass(frozen=True)
class FineTuneCandidate:
    """The fine-tuned candidate of the selection: fits itself (:meth:`fit_on`, the hook of
    :func:`.xcorpus_text.fit_on`) and its head scores texts (``proba_texts``)."""

    settings: FineTuneSettings
    seed: int = 0
    num_threads: int | None = 1
    quick: bool = False
    cache: bool = True
    # what the shared training-row code reads of a candidate
    head: str = "ft"
    love: str = "drop"
    goemotions: str = "ekman"
    corpus_balance: str = "none"

    def recipe(self) -> dict[str, Any]:
        """The estimator's keywords (quick: one epoch on ``quick_max_train`` items)."""
        s = self.settings.model_dump()
        s.pop("quick_max_train")
        if self.quick:
            s.update(epochs=1, max_train=self.settings.quick_max_train)
        return {**s, "seed": self.seed}

    def short(self) -> str:
        return f"ft top{self.settings.top_layers}"

    def to_dict(self) -> dict[str, Any]:
        return {"head": "ft", **self.recipe()}

    def fit_on(self, ctx: TextContext, corpora: Sequence[str], classes: Sequence[str]
               ) -> dict[str, Any]:
        """Fine-tuned on the train splits of ``corpora`` over ``classes`` (cached by
        content); the head dict of :func:`.xcorpus_text.fit_on` with ``proba_texts``."""
        from ..features.minilm import minilm_path
        from ..models.text_finetune import CARD, FineTunedMiniLM
        from ..paths import cache_dir

        t = ctx.table
        rows, y = _training_rows(ctx, corpora, "train", classes, self)
        texts = [t.texts[i] for i in rows]
        base = minilm_path()
        meta = {"v": _FT_VERSION, "recipe": self.recipe(), "classes": list(classes),
                "base": _base_sha(str(base))}
        folder = cache_dir() / "runs" / "xcorpus-text-ft" / _digest(meta, texts, y)
        reused = self.cache and (folder / CARD).is_file()
        if not reused:
            if ctx.log:
                ctx.log(f"    fine-tuning {self.short()} on {'+'.join(corpora)} "
                        f"({len(texts)} items, {len(classes)} classes)")
            m = FineTunedMiniLM(**self.recipe(), num_threads=self.num_threads,
                                base_path=base).fit(texts, y, list(classes))
            m.save(folder)
            _MODELS[str(folder)] = m
            info = dict(m.info)
        else:
            card = json.loads((folder / CARD).read_text("utf-8"))
            info = dict(card.get("training") or {})
        info.update(reused=bool(reused), model_dir=str(folder), corpora=list(corpora))
        if ctx.log and not reused:
            ctx.log(f"    fine-tuned in {info.get('train_seconds')} s "
                    f"(epoch losses {info.get('epoch_loss')})")

        def proba_texts(items: Sequence[str]) -> np.ndarray:
            key = _digest({"predict": 1}, items)
            f = folder / f"proba-{key}.npy"
            if self.cache and f.is_file():
                return np.load(f)
            p = _model(folder, self.num_threads).predict_proba(list(items))
            if self.cache:
                tmp = f.with_name(f.stem + ".tmp.npy")
                np.save(tmp, p)
                tmp.replace(f)
            return p

        return {"classes": list(classes), "info": info, "proba_texts": proba_texts}


class XcorpusTextFt(XcorpusTextSuite, name="xcorpus-text-ft",
                    params={"model": FineTuneParams, "features": TextFeatureParams}):
    """xcorpus-text with MiniLM's top layers fine-tuned as one more candidate of the nested
    LOCO selection (cells and joint model); macro-F1"""

    def body(self) -> dict[str, Any]:
        p, log = self.p, self.log
        ft = FineTuneCandidate(p.finetune, seed=self.seeds[0],
                               num_threads=self.cfg.train.num_threads, quick=self.quick)
        cands = [*self.grid_candidates(), ft]
        if log:
            log(f"xcorpus-text-ft: loading {', '.join(p.corpora)}; {len(cands)} candidates "
                f"(the last {ft.short()})")
        out = self.loco(cands)
        out["finetune"] = ft.to_dict()
        out["notes"] = _note(ft) + out["notes"]
        return out


def _note(ft: FineTuneCandidate) -> str:
    r = ft.recipe()
    return (f"Candidates: the frozen-MiniLM grid of xcorpus-text, then `{ft.short()}`: MiniLM "
            f"with its top {r['top_layers']} transformer layers and a linear head on the "
            f"mean-pooled tokens fine-tuned ({r['epochs']} epochs, batch {r['batch_size']}, "
            f"max {r['max_len']} tokens, AdamW lr {r['lr_encoder']:g} / head {r['lr_head']:g}, "
            f"weight decay {r['weight_decay']:g}, warm-up {r['warmup']:g}, class weights "
            f"count^-{r['class_balance']:g}, at most {r['max_train']} training items "
            f"(stratified, seed {r['seed']})); one recipe fixed before any figure. It is "
            "chosen by the same nested rule (ties: the frozen head first).\n\n")


#: the ``xcorpus-text-ft`` suite: result dict; writes the heatmap PNG
run_suite = xcorpus_text_ft = XcorpusTextFt.run
