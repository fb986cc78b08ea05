"""Nested leave-one-corpus-out exploration: other Whisper layer sets for the inductive setting,
on the trimmed clips (the committed recipe's features).

The layer sets of configs/xcorpus-speech.yaml (3+4, 3+4+5) were chosen before trimming; here
wider sets are scored against them on the trimmed clips. Rule, fixed before this script was
first run: a layer set joins the inductive grid iff its best candidate's avg4 is >= the current
grid's best (47.87: L3+4 norm=corpus C 0.001) + 0.5.

Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_layers_trim_explore.py NORM
"""
import sys

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402
from xcorpus_ensemble_explore import trimmed_table  # noqa: E402

from emofuse.recipes.xcorpus import candidates  # noqa: E402

LAYERS = [[2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5], [2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]


def main() -> None:
    norm = sys.argv[1]
    grid = {"layers": LAYERS, "norm": [norm], "C": [0.001]}
    rows = xe.nested_rows([("trim", trimmed_table(), None)], "inductive", candidates(grid))
    xe.print_rows(rows, f"inductive, trimmed clips, norm={norm}")


if __name__ == "__main__":
    main()
