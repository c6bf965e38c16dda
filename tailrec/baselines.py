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
