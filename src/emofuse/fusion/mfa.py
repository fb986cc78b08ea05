"""Feature-level fusion with Marginal Fisher Analysis (DV-EmotionNet).

Audio and visual feature vectors are brought to comparable sizes (each standardised and reduced
by PCA to ``size`` dimensions), concatenated, and projected by MFA (Yan et al., 2007): the
intrinsic graph joins every sample to its ``k1`` nearest same-class neighbours
(intra-class compactness), the penalty graph joins, for every class, the ``k2`` nearest pairs
of a sample of the class and a sample of another class (inter-class separability), and the
projection solves the regularised generalised eigenproblem
``X^T L_b X w = lambda (X^T L_w X + reg * tr/d * I) w`` (scipy), keeping the largest
eigenvalues. Everything is fitted on training data only; the projected vectors then go to a
classifier (the FERCNN 1-D CNN in the recipe; any classifier works).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["MarginalFisherAnalysis", "MFAProjector", "mfa_graphs"]


def mfa_graphs(X: np.ndarray, y: np.ndarray, *, k1: int, k2: int) -> tuple[np.ndarray, np.ndarray]:
    """The intrinsic (``W_w``) and penalty (``W_b``) adjacency matrices, symmetric 0/1."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    n = len(X)
    sq = (X ** 2).sum(1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    W_w = np.zeros((n, n))
    W_b = np.zeros((n, n))
    for c in np.unique(y):
        inside = np.flatnonzero(y == c)
        outside = np.flatnonzero(y != c)
        if len(inside) > 1 and k1 > 0:
            d_in = D[np.ix_(inside, inside)].copy()
            np.fill_diagonal(d_in, np.inf)
            k = min(k1, len(inside) - 1)
            nn_idx = np.argpartition(d_in, k - 1, axis=1)[:, :k]
            rows = np.repeat(inside, k)
            cols = inside[nn_idx.reshape(-1)]
            W_w[rows, cols] = W_w[cols, rows] = 1.0
        if len(outside) and k2 > 0:
            d_out = D[np.ix_(inside, outside)].reshape(-1)
            k = min(k2, d_out.size)
            flat = np.argpartition(d_out, k - 1)[:k]
            rows = inside[flat // len(outside)]
            cols = outside[flat % len(outside)]
            W_b[rows, cols] = W_b[cols, rows] = 1.0
    return W_w, W_b


class MarginalFisherAnalysis:
    """Marginal Fisher Analysis (scikit-learn style ``fit`` / ``transform``).

    Parameters
    ----------
    n_components
        Output dimensions (``None``: all input dimensions).
    k1
        Same-class neighbours per sample in the intrinsic graph.
    k2
        Nearest between-class pairs per class in the penalty graph.
    reg
        Ridge added to the intrinsic scatter, relative to its mean eigenvalue.
    """

    def __init__(self, n_components: int | None = None, *, k1: int = 5, k2: int = 20,
                 reg: float = 1e-3) -> None:
        if k1 < 1 or k2 < 1:
            raise ValueError(f"k1 and k2 must be >= 1, got {k1}, {k2}")
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.n_components, self.k1, self.k2, self.reg = n_components, k1, k2, reg

    def fit(self, X: np.ndarray, y: np.ndarray) -> MarginalFisherAnalysis:
        from scipy.linalg import eigh

        X = np.asarray(X, np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (n, d) with one label per row, got {X.shape} and "
                             f"{len(y)} labels")
        if len(np.unique(y)) < 2:
            raise ValueError("MFA needs at least two classes")
        self.mean_ = X.mean(0)
        Xc = X - self.mean_
        W_w, W_b = mfa_graphs(Xc, y, k1=self.k1, k2=self.k2)
        L_w = np.diag(W_w.sum(1)) - W_w
        L_b = np.diag(W_b.sum(1)) - W_b
        S_w = Xc.T @ L_w @ Xc
        S_b = Xc.T @ L_b @ Xc
        d = X.shape[1]
        S_w = S_w + self.reg * max(np.trace(S_w) / d, 1e-12) * np.eye(d)
        vals, vecs = eigh(S_b, S_w)
        order = np.argsort(vals)[::-1]
        k = d if self.n_components is None else min(int(self.n_components), d)
        self.eigenvalues_ = vals[order[:k]]
        self.components_ = vecs[:, order[:k]].T
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise RuntimeError("MarginalFisherAnalysis used before fit")
        return ((np.asarray(X, np.float64) - self.mean_) @ self.components_.T).astype(np.float32)

    def fit_transform(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.fit(X, y).transform(X)


class MFAProjector:
    """Comparable sizes, concatenation, MFA: ``{modality: (n, d_m)} -> (n, n_components)``.

    Each modality is standardised and reduced by PCA to ``min(size, d_m, n - 1)`` dimensions
    (whitened, so that no modality dominates the distances), the blocks are concatenated and
    projected by :class:`MarginalFisherAnalysis`; the output is standardised. Fitted on
    training data only.
    """

    def __init__(self, *, size: int = 32, n_components: int = 32, k1: int = 5, k2: int = 20,
                 reg: float = 1e-3) -> None:
        self.size, self.n_components = size, n_components
        self.mfa = MarginalFisherAnalysis(n_components, k1=k1, k2=k2, reg=reg)

    def _blocks(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = []
        for m, (mu, sd, pca) in self.reducers_.items():
            if m not in X:
                raise ValueError(f"missing modality {m!r}")
            parts.append(pca.transform((np.asarray(X[m], np.float64) - mu) / sd))
        return np.concatenate(parts, axis=1)

    def fit(self, X: Mapping[str, np.ndarray], y: np.ndarray) -> MFAProjector:
        from sklearn.decomposition import PCA

        self.reducers_ = {}
        for m, x in X.items():
            x = np.asarray(x, np.float64)
            mu, sd = x.mean(0), x.std(0)
            sd = np.where(sd > 1e-6, sd, 1.0)
            k = max(1, min(self.size, x.shape[1], len(x) - 1))
            pca = PCA(n_components=k, whiten=True, svd_solver="full").fit((x - mu) / sd)
            self.reducers_[m] = (mu, sd, pca)
        Z = self.mfa.fit_transform(self._blocks(X), y)
        self.out_mean_, self.out_scale_ = Z.mean(0), np.maximum(Z.std(0), 1e-6)
        return self

    def transform(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        if not hasattr(self, "reducers_"):
            raise RuntimeError("MFAProjector used before fit")
        Z = self.mfa.transform(self._blocks(X))
        return ((Z - self.out_mean_) / self.out_scale_).astype(np.float32)

    def fit_transform(self, X: Mapping[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        return self.fit(X, y).transform(X)
