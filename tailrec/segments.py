"""The one definition of head, torso and tail users.

A user's activity is the number of training interactions. Tail users are at
or below the ``tail_quantile`` of that count, head users above the
``head_quantile``, torso users in between. Users with no training
interaction at all count as tail.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = ("head", "torso", "tail")


def activity_counts(train: pd.DataFrame, n_users: int) -> np.ndarray:
    """Training interactions per user, shape (n_users,), int64."""
    return np.bincount(train["user_index"].to_numpy(), minlength=n_users).astype(np.int64)


def segment_users(
    train: pd.DataFrame,
    n_users: int,
    tail_quantile: float = 0.25,
    head_quantile: float = 0.75,
) -> pd.Series:
    """Label every user ``"head"``, ``"torso"`` or ``"tail"`` by training activity.

    Parameters
    ----------
    train : pandas.DataFrame
        Training interactions with a ``user_index`` column.
    n_users : int
        Number of users; indices run from 0 to ``n_users - 1``.
    tail_quantile, head_quantile : float
        Quantiles of the activity count, ``0 < tail_quantile < head_quantile < 1``.

    Returns
    -------
    pandas.Series of str, indexed by user_index
        The segment of each user. Ties at a threshold go to the lower segment,
        so the tail can hold a little more than its quantile's share.
    """
    if not 0.0 < tail_quantile < head_quantile < 1.0:
        raise ValueError(
            "Need 0 < tail_quantile < head_quantile < 1, got "
            f"tail_quantile={tail_quantile} and head_quantile={head_quantile}."
        )
    counts = activity_counts(train, n_users)
    tail_limit, head_limit = np.quantile(counts, [tail_quantile, head_quantile])
    labels = np.where(counts <= tail_limit, "tail", np.where(counts > head_limit, "head", "torso"))
    return pd.Series(labels, index=pd.RangeIndex(n_users, name="user_index"), name="segment")


def segment_summary(segments: pd.Series, train: pd.DataFrame) -> pd.DataFrame:
    """Users, and min / median / max training interactions, per segment."""
    counts = pd.Series(activity_counts(train, len(segments)), index=segments.index)
    table = counts.groupby(segments).agg(["size", "min", "median", "max"])
    table.columns = ["users", "min_interactions", "median_interactions", "max_interactions"]
    return table.reindex(list(SEGMENTS))
