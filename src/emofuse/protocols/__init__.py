"""Evaluation protocols (how records are split into train / validation / test) and the leakage
check every protocol passes by default.

A :class:`Split` holds record ids per part. Builders are pure functions over lists of
:class:`~emofuse.corpora.Record`:

* :func:`official_split` - the corpus' own train/dev/test (FER2013 Training/PublicTest/
  PrivateTest; MELD, GoEmotions, dair train/dev/test).
* :func:`speaker_kfold` - speaker-independent (group-aware), stratified k-fold.
* :func:`leave_one_speaker_out` - one fold per speaker.
* :func:`emobox_folds` - the exact EmoBox folds from ``<protocols_root>/<corpus>_emobox_folds.csv``.
* :func:`cross_corpus` - train on one corpus, test on another, over their shared labels.
* :func:`random_split` - item-level stratified split; flagged ``leaking=True`` (speakers cross).

:meth:`Split.with_validation` (built on :func:`validation_split`) carves a speaker-grouped
validation set out of a training part only, never out of the test part.

:func:`check_leakage` looks for a group (``record.group``: the dialogue for MELD, else the
speaker), a record id, or identical content (``extra["content_hash"]``) on both sides of
train/test, train/val and val/test, and raises :class:`~emofuse.errors.LeakageError` unless told
the leak is known. Fold files (``fold,split,id,label`` CSV, the shape of the EmoBox CSVs) are
written by :func:`write_folds` and read back by :func:`read_folds`.

Folds are numbered from 1, as in EmoBox. Ids inside each part keep the order of the input records.
"""

from __future__ import annotations

from ._core import (
                    PARTS,
                    LeakageReport,
                    Split,
                    check_leakage,
                    drop_cross_duplicates,
                    validation_split,
)
from ._files import emobox_folds, read_folds, write_folds
from ._folds import (
                    cross_corpus,
                    leave_one_speaker_out,
                    make_splits,
                    official_split,
                    random_split,
                    speaker_kfold,
)

__all__ = [
    "PARTS",
    "Split",
    "LeakageReport",
    "official_split",
    "speaker_kfold",
    "leave_one_speaker_out",
    "emobox_folds",
    "validation_split",
    "cross_corpus",
    "random_split",
    "check_leakage",
    "drop_cross_duplicates",
    "write_folds",
    "read_folds",
    "make_splits",
]
