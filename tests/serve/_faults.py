"""Faults for the service tests, imported in the worker processes only (``worker_imports``):
an upload's file name picks the misbehaviour.

``sleep-S.*`` sleeps S seconds before predicting; ``litter-S.*`` also leaves a file in the
worker's temporary folder first; ``boom.*`` raises a RuntimeError naming the server's temporary
file; ``crash.*`` ends the worker process. Every prediction of a named fault carries the
worker's process id in its warnings (``worker pid N``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from emofuse import inference

_original = inference.Recognizer.predict


def _predict(self, x, *args, source=None, **kwargs):
    stem = Path(source or "").stem
    if stem.startswith("sleep-"):
        time.sleep(float(stem[6:]))
    elif stem.startswith("litter-"):
        fd, _ = tempfile.mkstemp(prefix="litter-")
        os.close(fd)
        time.sleep(float(stem[7:]))
    elif stem == "boom":
        raise RuntimeError(f"kaputt while reading {x}")
    elif stem == "crash":
        os._exit(3)
    pred = _original(self, x, *args, source=source, **kwargs)
    if stem.startswith(("sleep-", "litter-", "pid")):
        pred.warnings.append(f"worker pid {os.getpid()}")
    return pred


inference.Recognizer.predict = _predict
