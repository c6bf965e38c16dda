"""Simple baselines that share the scorer interface of :mod:`tailrec.evaluation`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailrec.evaluation import Scorer


def popularity_scorer(train: pd.DataFrame, n_items: int) -> Scorer:
    """Score every item by its number of training interactions, the same for every user."""
    counts = np.bincount(train["item_index"].to_numpy(), minlength=n_items).astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), n_items))

    return score


def random_scorer(n_items: int, seed: int) -> Scorer:
    """Independent uniform scores for every (user, item) pair, fixed by ``seed``.

    The same user always gets the same scores, whatever batch it comes in.
    """

    def score(users: np.ndarray) -> np.ndarray:
        rows = [np.random.default_rng([seed, int(u)]).random(n_items) for u in users]
        return np.stack(rows) if rows else np.zeros((0, n_items))

    return score


def ease_scorer(train: pd.DataFrame, n_items: int, l2: float = 500.0) -> Scorer:
    """EASE: a closed-form item-item model (Steck, 2019).

    Solves ``min_B ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0``, where
    ``X`` is the binary user-item matrix of ``train``. With
    ``P = (XᵀX + l2 I)⁻¹`` the solution is ``B = I - P / diag(P)`` (column-wise),
    and a user's scores are their row of ``X B``.

    The item-item matrix is dense, (n_items, n_items) float64, so memory grows
    with the square of the catalogue: fine for thousands of items, not for
    hundreds of thousands.
    """
    n_users = int(train["user_index"].max()) + 1 if len(train) else 0
    X = np.zeros((n_users, n_items))
    X[train["user_index"].to_numpy(), train["item_index"].to_numpy()] = 1.0
    gram = X.T @ X  # (n_items, n_items) co-occurrence counts
    gram[np.diag_indices(n_items)] += l2
    P = np.linalg.inv(gram)
    B = -P / np.diag(P)  # divide column j by P[j, j]
    B[np.diag_indices(n_items)] = 0.0

    def score(users: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(users), n_items))
        known = users < n_users
        rows[known] = X[users[known]] @ B  # (B, n_items) @ (n_items, n_items)
        return rows

    return score
