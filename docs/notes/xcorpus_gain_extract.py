"""Fill the feature cache with the canonical Whisper-base states (layers 1..6, meanstd, clip
padding) of every xcorpus-speech clip cut to its speech span (``trim: vad``, as the committed
recipe) and then scaled to one loudness (``gain: rms``: -23 dBFS root-mean-square; see
emofuse.features.speech.normalize_gain), through the library's own cached extraction.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_gain_extract.py SHARD NSHARDS
"""
import sys

sys.path.insert(0, "docs/notes")
from xcorpus_trim_extract import fill  # noqa: E402

from emofuse.features.speech import extract  # noqa: E402

PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip",
          "trim": "vad", "gain": "rms"}


def main() -> None:
    fill(lambda path, cache: extract(path, "whisper", params=PARAMS, cache=cache), sys.argv[1:])


if __name__ == "__main__":
    main()
