"""Score, rank and evaluate any recommender on a split, overall and per segment.

A *scorer* is any function that maps a batch of user indices (int64, shape
(B,)) to a float array of scores for every item, shape (B, n_items); higher
is better. The tailrec model and every baseline are scorers, so they are
evaluated by exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from tailrec.metrics import RANKING_METRICS, best_threshold, classification_metrics, ranking_metrics
from tailrec.model import BilinearModel

Scorer = Callable[[np.ndarray], np.ndarray]


def model_scorer(model: BilinearModel) -> Scorer:
    """Wrap a trained model as a scorer (no gradients, scores returned on the CPU)."""

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            batch = torch.as_tensor(users, dtype=torch.long, device=model.W.device)
            return model.score_all(batch).float().cpu().numpy()

    return score


def top_k_items(
    scorer: Scorer,
    users: np.ndarray,
    k: int,
    seen: Sequence[pd.DataFrame] = (),
    chunk_size: int = 1024,
) -> np.ndarray:
    """The ``k`` best items per user that the user has not seen.

    Parameters
    ----------
    scorer : Scorer
    users : numpy.ndarray of int64, shape (U,)
    k : int
        List length; at most the number of items.
    seen : sequence of pandas.DataFrame
        Interactions (``user_index``, ``item_index``) to exclude from the lists,
        normally the training (and, for the test set, validation) data.
    chunk_size : int
        Users scored at once, so memory stays bounded by ``chunk_size * n_items``.

    Returns
    -------
    numpy.ndarray of int64, shape (U, k)
        Item indices, best first. Equal scores are ordered by item index.
    """
    users = np.asarray(users, dtype=np.int64)
    seen_pairs = pd.concat([s[["user_index", "item_index"]] for s in seen]) if seen else None
    out = []
    for start in range(0, len(users), chunk_size):
        chunk = users[start : start + chunk_size]
        scores = np.array(scorer(chunk), dtype=np.float64, copy=True)  # (B, n_items)
        if k > scores.shape[1]:
            raise ValueError(f"k={k} is larger than the catalogue of {scores.shape[1]} items.")
        if seen_pairs is not None:
            row_of_user = pd.Series(np.arange(len(chunk)), index=chunk)
            mine = seen_pairs[seen_pairs["user_index"].isin(chunk)]
            scores[
                row_of_user.loc[mine["user_index"]].to_numpy(), mine["item_index"].to_numpy()
            ] = -np.inf
        # argpartition finds the k best in linear time; a stable sort then orders them.
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        candidate_scores = np.take_along_axis(scores, candidates, axis=1)
        order = np.lexsort((candidates, -candidate_scores), axis=1)
        out.append(np.take_along_axis(candidates, order, axis=1))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def evaluate_ranking(
    scorer: Scorer,
    relevant: pd.DataFrame,
    seen: Sequence[pd.DataFrame],
    n_items: int,
    k: int = 10,
) -> pd.DataFrame:
    """Per-user ranking metrics at ``k`` for every user with a held-out item."""
    users = np.unique(relevant["user_index"].to_numpy())
    top_items = top_k_items(scorer, users, k, seen)
    return ranking_metrics(users, top_items, relevant, n_items)


def summarize_by_segment(per_user: pd.DataFrame, segments: pd.Series | None = None) -> pd.DataFrame:
    """Mean of each ranking metric over all users and, when given, per segment.

    Returns a frame indexed by ``"all"`` and the segment names, with a
    ``users`` column counting the users averaged.
    """
    columns = [m for m in RANKING_METRICS if m in per_user]
    rows = {"all": per_user[columns].mean()}
    counts = {"all": len(per_user)}
    if segments is not None:
        labelled = per_user.assign(segment=segments.loc[per_user["user_index"]].to_numpy())
        for name, group in labelled.groupby("segment", sort=False):
            rows[str(name)] = group[columns].mean()
            counts[str(name)] = len(group)
    table = pd.DataFrame(rows).T
    table.insert(0, "users", pd.Series(counts))
    order = ["all"] + [s for s in ("head", "torso", "tail") if s in table.index]
    return table.loc[order + [i for i in table.index if i not in order]]


def sample_negative_pairs(
    positives: pd.DataFrame, known: Sequence[pd.DataFrame], n_items: int, seed: int
) -> pd.DataFrame:
    """One random unobserved item per positive pair, for the same user.

    An item counts as observed if the user has it in any frame of ``known``
    (train, validation and test together), so no negative is secretly a positive.
    """
    rng = np.random.default_rng(seed)
    known_keys = np.unique(
        np.concatenate(
            [f["user_index"].to_numpy() * n_items + f["item_index"].to_numpy() for f in known]
        )
    )
    users = positives["user_index"].to_numpy()
    items = rng.integers(0, n_items, size=len(users))
    clash = np.isin(users * n_items + items, known_keys)
    while clash.any():
        items[clash] = rng.integers(0, n_items, size=int(clash.sum()))
        clash = np.isin(users * n_items + items, known_keys)
    return pd.DataFrame({"user_index": users, "item_index": items})


def pair_scores(scorer: Scorer, pairs: pd.DataFrame, chunk_size: int = 1024) -> np.ndarray:
    """Scores of given (user, item) pairs, computed from the scorer's full rows."""
    out = np.empty(len(pairs), dtype=np.float64)
    users, items = pairs["user_index"].to_numpy(), pairs["item_index"].to_numpy()
    unique_users = np.unique(users)
    for start in range(0, len(unique_users), chunk_size):
        chunk = unique_users[start : start + chunk_size]
        scores = np.asarray(scorer(chunk))
        rows = np.searchsorted(chunk, users)
        inside = np.isin(users, chunk)
        out[inside] = scores[rows[inside], items[inside]]
    return out


def evaluate_classification(
    scorer: Scorer,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    known: Sequence[pd.DataFrame],
    n_items: int,
    seed: int,
) -> pd.DataFrame:
    """Accuracy, precision, recall, F1 and AUC on held-out positives vs. sampled negatives.

    Each held-out pair is matched with one unobserved item of the same user.
    The decision threshold is the one that maximises accuracy on the
    validation pairs; it is then applied unchanged to the test pairs.

    Returns a frame indexed by ``"validation"`` and ``"test"``.
    """
    results = {}
    threshold = None
    for name, frame, offset in (("validation", validation, 0), ("test", test, 1)):
        negatives = sample_negative_pairs(frame, known, n_items, seed + offset)
        pos, neg = pair_scores(scorer, frame), pair_scores(scorer, negatives)
        if threshold is None:
            threshold = best_threshold(pos, neg)
        results[name] = classification_metrics(pos, neg, threshold)
    table = pd.DataFrame(results).T
    table["threshold"] = threshold
    return table
