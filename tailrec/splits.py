"""Train / validation / test splits of an interaction table.

Every split is built from one rule: inside each group (an item, or a user),
order the rows (at random, or by time) and hold out the last fraction of them.
The validation set is always carved out of the training part the same way,
per user, so that early stopping never looks at the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLIT_NAMES = ("stratified_item", "random_user", "temporal")


@dataclass(frozen=True)
class Split:
    """Three disjoint interaction tables with the columns of ``InteractionData.interactions``."""

    name: str
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def __post_init__(self) -> None:
        check_disjoint(self.train, self.validation, self.test)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def check_disjoint(*frames: pd.DataFrame) -> None:
    """Raise ``ValueError`` if any (user, item) pair appears in two of the frames."""
    seen: set[tuple[int, int]] = set()
    for frame in frames:
        pairs = set(zip(frame["user_index"], frame["item_index"], strict=True))
        overlap = seen & pairs
        if overlap:
            example = next(iter(overlap))
            raise ValueError(
                f"{len(overlap)} (user_index, item_index) pairs appear in two parts of the "
                f"split, for example {example}; the split would leak test data into training."
            )
        seen |= pairs


def holdout_mask(
    frame: pd.DataFrame,
    group_col: str,
    fraction: float,
    order: np.ndarray,
    min_kept: int = 0,
) -> np.ndarray:
    """Mark, in each group, the rows that come last in ``order``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows to split.
    group_col : str
        Column whose groups are split separately (``"item_index"`` or ``"user_index"``).
    fraction : float
        Share of each group to hold out, in (0, 1). A group of ``n`` rows keeps
        ``round((1 - fraction) * n)`` rows and holds out the rest.
    order : numpy.ndarray of shape (len(frame),)
        Sort key; within a group the rows with the largest keys are held out.
        Ties are broken by row position.
    min_kept : int
        Keep at least this many rows of every group.

    Returns
    -------
    numpy.ndarray of bool, shape (len(frame),)
        True for held-out rows.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}.")
    keyed = pd.DataFrame(
        {"group": frame[group_col].to_numpy(), "order": order, "row": np.arange(len(frame))}
    )
    keyed = keyed.sort_values(["group", "order", "row"], kind="stable")
    position = keyed.groupby("group").cumcount().to_numpy()
    size = keyed.groupby("group")["row"].transform("size").to_numpy()
    # Round half up (np.round would round half to even and make 0.5-splits depend on parity).
    n_kept = np.maximum(np.floor((1.0 - fraction) * size + 0.5).astype(int), min_kept)
    mask = np.zeros(len(frame), dtype=bool)
    mask[keyed["row"].to_numpy()] = position >= n_kept
    return mask


def _split_by_group(
    name: str,
    interactions: pd.DataFrame,
    group_col: str,
    order: np.ndarray,
    test_fraction: float,
    val_fraction: float,
) -> Split:
    """Hold out the last ``test_fraction`` of each group (by ``order``) as the test set,
    then the last ``val_fraction`` of each user's remaining rows as the validation set.
    """
    # Per-user splits keep at least one training row for every user.
    min_kept = 1 if group_col == "user_index" else 0
    test_mask = holdout_mask(interactions, group_col, test_fraction, order, min_kept=min_kept)
    rest = interactions[~test_mask]
    val_mask = holdout_mask(rest, "user_index", val_fraction, order[~test_mask], min_kept=1)
    return Split(
        name=name,
        train=rest[~val_mask].reset_index(drop=True),
        validation=rest[val_mask].reset_index(drop=True),
        test=interactions[test_mask].reset_index(drop=True),
    )


def stratified_item_split(
    interactions: pd.DataFrame,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Per-item stratified split: each item's ratings are shuffled and 25% held out.

    This is the protocol of the best-known public MovieLens-100k benchmark
    (ratio 0.75 per item, seed 42). Validation takes ``val_fraction`` of each
    user's remaining ratings at random.
    """
    order = np.random.default_rng(seed).random(len(interactions))
    return _split_by_group(
        "stratified_item", interactions, "item_index", order, test_fraction, val_fraction
    )


def random_user_split(
    interactions: pd.DataFrame,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Per-user random split: each user's ratings are shuffled and 25% held out."""
    order = np.random.default_rng(seed).random(len(interactions))
    return _split_by_group(
        "random_user", interactions, "user_index", order, test_fraction, val_fraction
    )


def temporal_split(
    interactions: pd.DataFrame,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Per-user temporal split: each user's latest 25% of ratings are the test set.

    Validation is the latest ``val_fraction`` of what remains, so the model is
    always asked about a user's future. Ratings with the same timestamp are
    ordered by a seeded random key.
    """
    # Timestamps dominate; the random key in [0, 1) only breaks ties.
    jitter = np.random.default_rng(seed).random(len(interactions))
    order = interactions["timestamp"].to_numpy(dtype=np.float64) + jitter
    return _split_by_group(
        "temporal", interactions, "user_index", order, test_fraction, val_fraction
    )


def make_split(
    name: str,
    interactions: pd.DataFrame,
    test_fraction: float = 0.25,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> Split:
    """Build the split called ``name`` (one of :data:`SPLIT_NAMES`)."""
    builders = {
        "stratified_item": stratified_item_split,
        "random_user": random_user_split,
        "temporal": temporal_split,
    }
    if name not in builders:
        raise ValueError(f"Unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}.")
    for label, fraction in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"{label} must be between 0 and 1 (exclusive), got {fraction!r}.")
    missing = {"user_index", "item_index"} - set(interactions.columns)
    if name == "temporal":
        missing |= {"timestamp"} - set(interactions.columns)
    if missing:
        raise ValueError(
            f"The interactions lack the column(s) {', '.join(sorted(missing))}, which the "
            f"{name} split needs; pass a table such as InteractionData.interactions."
        )
    return builders[name](interactions, test_fraction, val_fraction, seed)
