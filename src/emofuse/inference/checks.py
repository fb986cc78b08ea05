"""Reliability checks that add warnings to a prediction: no speech in the audio (Silero VAD),
a tiny or blurred face."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import Face, Waveform

__all__ = ["MIN_FACE_PX", "MIN_FACE_SHARPNESS", "MIN_SPEECH_S", "face_problem", "face_sharpness",
           "no_speech"]

#: Smallest face side (pixels) in a larger picture for a face prediction to count as reliable.
MIN_FACE_PX = 20

#: Least sharpness of a face (variance of the Laplacian of its 64x64 grayscale crop) for a
#: face prediction to count as reliable. Chosen on FER2013 PublicTest: 0.1 % of its faces fall
#: below 20, 99.7 % of the same faces blurred with a Gaussian of sigma 2 px do.
MIN_FACE_SHARPNESS = 20.0


def face_sharpness(rgb: np.ndarray, box: Sequence[int]) -> float:
    """Variance of the Laplacian of the face ``box`` (x, y, w, h) of ``rgb``, resized to 64x64
    grayscale: low for blurred or flat faces."""
    import cv2

    x, y, w, h = (int(v) for v in box)
    crop = rgb[max(0, y): y + max(1, h), max(0, x): x + max(1, w)]
    if crop.size == 0:
        return 0.0
    g = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop[..., :3]),
                                                  cv2.COLOR_RGB2GRAY)
    g = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA if g.shape[0] > 64
                   else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F).var())


def face_problem(rgb: np.ndarray, face: Face | None) -> str | None:
    """Why a face found in ``rgb`` gives no reliable prediction (too small in a larger
    picture, or blurred / flat), or ``None``."""
    if face is None:
        return None
    if min(face.box[2], face.box[3]) < MIN_FACE_PX and min(rgb.shape[:2]) > 2 * MIN_FACE_PX:
        return f"only {face.box[2]}x{face.box[3]} pixels"
    if (sharp := face_sharpness(rgb, face.box)) < MIN_FACE_SHARPNESS:
        return f"blurred (sharpness {sharp:.1f}, below {MIN_FACE_SHARPNESS:g})"
    return None


#: Least speech (seconds, Silero VAD) for an audio prediction to count as reliable.
MIN_SPEECH_S = 0.25


def no_speech(w: Waveform) -> str | None:
    """A warning when Silero VAD finds (almost) no speech in the waveform, else ``None``."""
    from ..features.vad import speech_seconds, vad_available

    if not vad_available() or len(w.y) == 0:
        return None
    sec = speech_seconds(w.y, sr=w.sr)
    if sec >= MIN_SPEECH_S:
        return None
    return (f"no speech detected (voice activity {sec:.2f} s of {len(w.y) / w.sr:.1f} s): "
            "noise, a tone or silence carries no emotion; the prediction is unreliable")

