"""Evaluation protocols for long-tail users beyond the course's temporal split.

- :func:`published_split`: the per-item stratified 75/25 split (seed 42) of the
  best-known public MovieLens-100k benchmark, so results can be set beside it.
- :func:`few_shot_split`: a share of users is held out; each keeps only its
  ``n_shots`` earliest ratings for training and is tested on the rest. With
  ``n_shots = 0`` a user is known only by their profile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailrec.checks import require_whole_number
from tailrec.splits import Split, holdout_mask, stratified_item_split


def published_split(interactions: pd.DataFrame, seed: int = 42) -> Split:
    """Per-item stratified 75/25 split; validation is carved out of the 75%.

    Models that need no early stopping should train on ``train`` and
    ``validation`` together, as the published benchmark trains on all 75%.
    """
    return stratified_item_split(interactions, test_fraction=0.25, val_fraction=0.1, seed=seed)


def few_shot_split(
    interactions: pd.DataFrame,
    n_shots: int,
    user_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> tuple[Split, np.ndarray]:
    """Hold out ``user_fraction`` of the users and keep their ``n_shots`` earliest ratings.

    Parameters
    ----------
    interactions : pandas.DataFrame
        With ``user_index``, ``item_index`` and ``timestamp`` columns.
    n_shots : int
        Ratings each held-out user keeps for training (0 or more); the rest are
        their test set. Users with fewer than ``n_shots + 1`` ratings are not
        drawn, so every held-out user has something to be tested on.
    user_fraction : float
        Share of the eligible users to hold out, drawn with ``seed``.
    val_fraction : float
        Share of each other user's ratings, the latest, kept for early stopping.

    Returns
    -------
    (Split, numpy.ndarray)
        The split (its test set holds only held-out users) and the held-out
        user indices. The same seed draws the same users for every ``n_shots``.
    """
    require_whole_number("n_shots", n_shots, minimum=0)
    if not 0.0 < user_fraction < 1.0:
        raise ValueError(f"user_fraction must be between 0 and 1, got {user_fraction}.")
    rng = np.random.default_rng(seed)
    counts = interactions.groupby("user_index").size()
    users = np.sort(counts.index.to_numpy())
    # Draw from all users first, then drop the ineligible, so that the drawn set
    # does not depend on n_shots except through eligibility.
    drawn = rng.permutation(users)[: round(user_fraction * len(users))]
    held_out = np.sort(drawn[counts.loc[drawn].to_numpy() > n_shots])

    # Earliest first; a seeded key in [0, 1) breaks ties between equal timestamps.
    order = interactions["timestamp"].to_numpy(dtype=np.float64) + rng.random(len(interactions))
    is_held_out = interactions["user_index"].isin(held_out).to_numpy()
    rank = (
        pd.DataFrame({"user": interactions["user_index"].to_numpy(), "order": order})
        .groupby("user")["order"]
        .rank(method="first")
        .to_numpy()
    )
    test_mask = is_held_out & (rank > n_shots)
    warm = interactions[~is_held_out]
    val_mask = holdout_mask(warm, "user_index", val_fraction, order[~is_held_out], min_kept=1)
    split = Split(
        name=f"few_shot_{n_shots}",
        train=pd.concat([warm[~val_mask], interactions[is_held_out & ~test_mask]]).reset_index(
            drop=True
        ),
        validation=warm[val_mask].reset_index(drop=True),
        test=interactions[test_mask].reset_index(drop=True),
    )
    return split, held_out
