"""Seeded synthetic interaction logs with power-law users and items, for measuring scale.

Real logs are long-tailed on both sides: a few items take most interactions
and a few users make most of them. :func:`power_law_interactions` draws
users and items from Zipf-like weights (rank ``r`` has weight ``r ** -exponent``)
and keeps unique (user, item) pairs, so the speed benchmark can time
training on 10^5 to 10^7 interactions shaped like MovieLens, without any
data that cannot be shared. :func:`random_text_features` stands in for
encoder features: a scale test measures the model, not the encoder, and
encoding 10^5 texts would dominate it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tailrec.checks import require_whole_number


def power_law_interactions(
    n_interactions: int,
    n_users: int,
    n_items: int,
    seed: int = 42,
    exponent: float = 1.0,
) -> pd.DataFrame:
    """``n_interactions`` unique (user, item) pairs with power-law user and item activity.

    Returns a frame with ``user_index``, ``item_index`` (int64) and ``timestamp``
    (int64, increasing with the draw order), in draw order. Every user and
    item index lies in range; the busiest ranks are shuffled over the
    indices, so index 0 is not special.
    """
    require_whole_number("n_interactions", n_interactions, minimum=1)
    require_whole_number("n_users", n_users, minimum=1)
    require_whole_number("n_items", n_items, minimum=1)
    if n_interactions > n_users * n_items:
        raise ValueError(
            f"{n_interactions} unique pairs do not fit in {n_users} users x {n_items} items; "
            "ask for fewer interactions or more users or items."
        )
    if not (np.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent!r}.")
    rng = np.random.default_rng(seed)
    user_weights = _zipf_weights(n_users, exponent, rng)
    item_weights = _zipf_weights(n_items, exponent, rng)
    keys = np.zeros(0, dtype=np.int64)
    # Draw in rounds until enough unique pairs exist; repeats of popular pairs are dropped.
    while len(keys) < n_interactions:
        missing = n_interactions - len(keys)
        draw = max(missing * 2, 1024)
        users = rng.choice(n_users, size=draw, p=user_weights)
        items = rng.choice(n_items, size=draw, p=item_weights)
        fresh = users.astype(np.int64) * n_items + items
        combined = np.concatenate([keys, fresh])
        _, first = np.unique(combined, return_index=True)
        keys = combined[np.sort(first)][:n_interactions]
    return pd.DataFrame(
        {
            "user_index": keys // n_items,
            "item_index": keys % n_items,
            "timestamp": np.arange(len(keys), dtype=np.int64),
        }
    )


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return rng.permutation(weights / weights.sum())


def random_text_features(n: int, width: int = 384, seed: int = 42) -> np.ndarray:
    """Unit-length random vectors (float32, (n, width)) in place of encoder features."""
    vectors = np.random.default_rng(seed).standard_normal((n, width), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # in place: 10^6 rows are 1.5 GB
    return vectors
