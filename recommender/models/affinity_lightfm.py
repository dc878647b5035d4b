"""LightFM affinity engine: a hybrid factorisation of reps (users) and lead features (items).

Reps are users described by their identity plus their attributes; leads are items described
by their features *only* (no lead identity: each lead has one assignment, so identity
would learn nothing, and a new lead must score from its features: cold start). Each
feature carries a ``n_components`` factor vector and a bias; a lead representation is the
*sum* of its features' vectors (``normalise="none"``, the default) or their mean
(``"l1"``), and a score is ``rep . lead + rep_bias + lead_bias``. The sum lets each feature
carry its full effect; the mean divides it by the number of columns, which on the
simulated team (``bench/affinity_quality.py``, 50,000 leads x 200 reps, seeds 0 and 1)
recovered the planted per-(rep, segment) conversion clearly worse (Spearman of learned
vs true conversion 0.50 and 0.54 with the mean, 0.56 with the sum).
Training uses LightFM's logistic loss on the assignment history, won as +1, lost as -1,
so lost deals are informative negatives. Representations are precomputed and scored by
one matrix product; ``LightFM.predict`` is never used for scoring.

With ``n_threads > 1`` LightFM trains Hogwild-style and is not bit-reproducible; use
``n_threads=1`` where exact repeatability matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recommender.models.affinity import (
    EmbeddingAffinity,
    FloatArray,
    check_interactions,
    csr_from_arrays,
    csr_to_arrays,
    read_folder,
    require_fitted,
    row_normalise,
    write_folder,
)
from recommender.models.base import init_params

_FORMAT = "leadrank.affinity.lightfm/1"
NORMALISE = ("none", "l1")


class LightFMAffinity(EmbeddingAffinity):
    """Rep x lead affinity learned by LightFM with lead features as item features.

    Args:
        n_components: latent factors ``d`` (representations have ``d + 2`` columns).
        epochs: passes over the interactions.
        learning_rate: adagrad step.
        alpha: L2 penalty on feature factors, for reps and leads alike.
        normalise: lead feature rows as given (``none``: a lead is the sum of its
            features) or scaled to sum 1 (``l1``: the mean).
        seed: random seed of the factor initialisation and the sample order.
        n_threads: training threads (and BLAS threads while scoring).
    """

    def __init__(
        self,
        n_components: int = 16,
        epochs: int = 30,
        learning_rate: float = 0.05,
        alpha: float = 1e-5,
        seed: int = 0,
        n_threads: int = 2,
        normalise: str = "none",
    ) -> None:
        self.n_components = n_components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.normalise = normalise
        self.seed = seed
        self.n_threads = n_threads

    # ------------------------------------------------------------------------- fitting

    def fit(
        self,
        rep_idx: np.ndarray,
        lead_idx: np.ndarray,
        label: np.ndarray,
        lead_features: sp.csr_matrix,
        rep_features: sp.csr_matrix | None = None,
        *,
        n_reps: int,
    ) -> Self:
        """Fit on interactions (label 1.0 won, 0.0 lost); replaces any earlier fit.

        Raises:
            ValueError: bad shapes, indices or labels (see ``check_interactions``).
        """
        if self.normalise not in NORMALISE:
            raise ValueError(f"normalise must be one of {NORMALISE}, got {self.normalise!r}")
        r, i, y = check_interactions(rep_idx, lead_idx, label, lead_features, n_reps)
        user_features = self._user_features(n_reps, rep_features)
        leads, item_col = np.unique(i, return_inverse=True)
        items = self._rows(sp.csr_matrix(lead_features)[leads])
        inter = sp.coo_matrix(
            (np.where(y > 0.5, 1.0, -1.0).astype(np.float32), (r, item_col)),
            shape=(n_reps, len(leads)),
        )
        model = LightFM(
            no_components=self.n_components,
            loss="logistic",
            learning_rate=self.learning_rate,
            item_alpha=self.alpha,
            user_alpha=self.alpha,
            random_state=np.random.RandomState(self.seed),
        )
        model.fit(
            inter,
            user_features=user_features,
            item_features=items,
            epochs=self.epochs,
            num_threads=self.n_threads,
        )
        seen = np.bincount(r, minlength=n_reps) > 0
        # An unseen rep's identity row was never trained: drop it so the rep is scored
        # from its attributes alone instead of from random initial factors.
        model.user_embeddings[:n_reps][~seen] = 0.0
        model.user_biases[:n_reps][~seen] = 0.0
        self._set_state(model, user_features, seen)
        return self

    def _rows(self, lead_features: sp.spmatrix) -> sp.csr_matrix:
        """Lead feature rows as the model weighs them (see ``normalise``), float32 CSR."""
        if self.normalise == "l1":
            return row_normalise(lead_features)
        return sp.csr_matrix(lead_features, dtype=np.float32)

    def _user_features(self, n_reps: int, rep_features: sp.csr_matrix | None) -> sp.csr_matrix:
        """Rep identity columns, then rep attributes, each row normalised to sum 1."""
        identity = sp.identity(n_reps, dtype=np.float32, format="csr")
        if rep_features is None:
            return identity
        if rep_features.shape[0] != n_reps:
            raise ValueError(f"rep_features has {rep_features.shape[0]} rows; n_reps={n_reps}")
        return row_normalise(sp.hstack([identity, sp.csr_matrix(rep_features)], format="csr"))

    def _set_state(self, model: LightFM, user_features: sp.csr_matrix, seen: np.ndarray) -> None:
        """Keep the learned arrays and precompute the rep representation."""
        self.model_ = model
        self.user_features_ = user_features
        self.seen_reps_ = seen
        self.item_embeddings_ = np.ascontiguousarray(model.item_embeddings, dtype=np.float32)
        self.item_biases_ = np.asarray(model.item_biases, dtype=np.float32)
        reps = user_features @ model.user_embeddings
        bias = user_features @ model.user_biases
        ones = np.ones((reps.shape[0], 1), dtype=np.float32)
        self.rep_embeddings_ = np.hstack([reps, ones, bias[:, None]]).astype(np.float32)

    # ------------------------------------------------------------------------- scoring

    def lead_embeddings(self, lead_features: sp.csr_matrix) -> FloatArray:
        """``[factors, lead_bias, 1]`` per lead, from its features only: ``(n, d + 2)``.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: the feature width differs from training.
        """
        require_fitted(self, "rep_embeddings_")
        if lead_features.shape[1] != self.item_embeddings_.shape[0]:
            raise ValueError(
                f"lead_features has {lead_features.shape[1]} columns; "
                f"the model was fitted on {self.item_embeddings_.shape[0]}"
            )
        x = self._rows(lead_features)
        out = np.empty((x.shape[0], self.n_components + 2), dtype=np.float32)
        out[:, : self.n_components] = x @ self.item_embeddings_
        out[:, self.n_components] = x @ self.item_biases_
        out[:, self.n_components + 1] = 1.0
        return out

    def to_lightfm(self) -> LightFM:
        """The underlying LightFM model (rebuilt from the stored arrays after ``load``)."""
        require_fitted(self, "model_")
        return self.model_

    # ------------------------------------------------------------------------- storage

    def _params(self) -> dict[str, Any]:
        return init_params(self)

    def save(self, path: Path) -> None:
        """Write ``model.json`` and ``arrays.npz`` (LightFM's learned arrays) into ``path``.

        Raises:
            NotFittedError: before ``fit``.
        """
        require_fitted(self, "model_")
        m = self.model_
        arrays = {
            "item_embeddings": m.item_embeddings,
            "item_biases": m.item_biases,
            "user_embeddings": m.user_embeddings,
            "user_biases": m.user_biases,
            "seen_reps": self.seen_reps_,
            **csr_to_arrays("user_features", self.user_features_),
        }
        write_folder(Path(path), {"format": _FORMAT, "params": self._params()}, arrays)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Rebuild a model written by ``save`` (no pickle).

        Raises:
            ModelFolderError: missing or foreign files.
        """
        meta, arrays = read_folder(Path(path), _FORMAT)
        # Models written before ``normalise`` existed used the mean of the features.
        obj = cls(**{"normalise": "l1", **meta["params"]})
        model = LightFM(no_components=obj.n_components, loss="logistic")
        model.item_embeddings = arrays["item_embeddings"]
        model.item_biases = arrays["item_biases"]
        model.user_embeddings = arrays["user_embeddings"]
        model.user_biases = arrays["user_biases"]
        for name in ("item_embedding", "item_bias", "user_embedding", "user_bias"):
            base = getattr(model, name + ("es" if name.endswith("bias") else "s"))
            setattr(model, f"{name}_gradients", np.zeros_like(base))
            setattr(model, f"{name}_momentum", np.zeros_like(base))
        obj._set_state(model, csr_from_arrays("user_features", arrays), arrays["seen_reps"])
        return obj
