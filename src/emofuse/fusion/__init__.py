"""Multimodal fusion: attention late fusion, MFA feature-level fusion, intermediate fusion with
auxiliary losses, and the baselines they are measured against.

>>> from emofuse.fusion import AttentionFusion, FusionDataset, train_net, predict_net
>>> net = AttentionFusion(input_dims={"audio": 585, "face": 35}, n_classes=8)
>>> info = train_net(net, FusionDataset(X, mask, y, modality_dropout=0.3),
...                  FusionDataset(Xv, mask_v, yv), n_classes=8, seed=0)   # doctest: +SKIP
>>> out = predict_net(net, X_test, mask_test)      # doctest: +SKIP
>>> out["proba"], out["weights"]                   # doctest: +SKIP

The recipe that wires these to corpora, features and the benchmark is
:mod:`emofuse.recipes.fusion`.
"""

from ._torch import FusionDataset, VectorNet, predict_net, train_net
from .attention import AttentionFusion, MLPEncoder
from .baselines import decision_average, early_concat, fit_logistic, fit_svm, svm_proba
from .intermediate import IntermediateFusion
from .mfa import MarginalFisherAnalysis, MFAProjector
from .normalise import Standardiser, speaker_normalise
from .pairing import synthetic_pairs

__all__ = ["AttentionFusion", "MLPEncoder", "IntermediateFusion", "MarginalFisherAnalysis",
           "MFAProjector", "FusionDataset", "VectorNet", "train_net", "predict_net",
           "early_concat", "decision_average", "fit_svm", "fit_logistic", "svm_proba",
           "Standardiser", "speaker_normalise", "synthetic_pairs"]
