"""Predicting emotions with trained models.

>>> from emofuse.inference import Recognizer, load
>>> rec = Recognizer.load("default")                # bundled speech, face, text, fusion
>>> rec.predict("examples/video.mp4")               # doctest: +SKIP
>>> speech = load("path/to/speech-model")           # one model: a Predictor  # doctest: +SKIP
>>> speech.predict(Waveform(y, 16000))              # -> ModalityOutput       # doctest: +SKIP

The package, from the bottom:

* :mod:`~emofuse.inference.types` - inputs, outputs, results, errors, constants;
* :mod:`~emofuse.inference.card` - the one reader of ``card.json`` (:class:`ModelCard`), model
  folders and bundles (:func:`resolve_models`);
* :mod:`~emofuse.inference.protocol` - the predictor protocol (``load(model_dir) ->
  Predictor``, ``Predictor.predict(x) -> ModalityOutput``) and the registry of loaders;
* the modality predictors: :mod:`~emofuse.inference.speech` (with
  :mod:`~emofuse.inference.speech_models`), :mod:`~emofuse.inference.face`,
  :mod:`~emofuse.inference.text`, and :mod:`~emofuse.inference.generic` (fusion,
  ``late-fusion``, ``torch-feature``), imported when a model of theirs is loaded;
* :mod:`~emofuse.inference.detect` (what a file holds), :mod:`~emofuse.inference.checks`
  (reliability), :mod:`~emofuse.inference.video` (the video pipeline),
  :mod:`~emofuse.inference.timeline` (segments of long audio);
* :mod:`~emofuse.inference.recognizer` - :class:`Recognizer`, composing the predictors;
* :mod:`~emofuse.inference.stream` (with ``stream_parts``, ``stream_live``,
  ``stream_files``) - live emotion from audio chunks and frames.
"""

from __future__ import annotations

from .card import (ModelCard, ModelInfo, bundled_dir, model_path, read_card, resolve_models)
from .detect import detect_kind
from .protocol import (_ADAPTERS, FusionPredictor, ModalityPredictor, Predictor, late_fusion,
                       list_adapters, load, load_predictor, register_adapter, register_predictor)
from .recognizer import PredictOptions, Recognizer
from .stream import Stream
from .stream_files import agreement, media_events, play, replay, stream_timeline
from .stream_parts import StreamOptions, StreamSlots, TooManyStreams, Update
from .types import (BUNDLED_NAMES, KIND_MODALITIES, MEDIA_EXTENSIONS, MODALITIES, Face,
                    ModalityOutput, ModelUnavailableError, NoFaceError, Prediction,
                    PredictionFailure, Segment, UnsupportedMediaError, Waveform)

__all__ = [
    "Recognizer", "Prediction", "PredictionFailure", "Face", "Segment", "ModelInfo",
    "ModelCard", "PredictOptions", "ModalityOutput", "Predictor", "ModalityPredictor",
    "FusionPredictor", "Waveform", "register_predictor", "register_adapter", "list_adapters",
    "load", "load_predictor", "read_card", "detect_kind", "late_fusion", "bundled_dir",
    "resolve_models", "model_path", "UnsupportedMediaError", "NoFaceError",
    "ModelUnavailableError", "Stream", "StreamOptions", "StreamSlots", "TooManyStreams",
    "Update", "replay", "play", "media_events", "stream_timeline", "agreement",
    "MODALITIES", "BUNDLED_NAMES", "KIND_MODALITIES", "MEDIA_EXTENSIONS", "_ADAPTERS",
]
