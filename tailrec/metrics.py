"""Ranking and classification metrics, vectorised over users.

Conventions shared by every ranking metric:

- a recommendation list holds ``k`` distinct items that the user did not
  interact with in the data the model was trained on (seen items excluded);
- every held-out interaction is relevant, whatever its rating, unless the
  caller filters the held-out table first;
- users with no held-out item have no score and are left out of averages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RANKING_METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate")


def _pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users.astype(np.int64) * n_items + items.astype(np.int64)


def hit_matrix(
    users: np.ndarray, top_items: np.ndarray, relevant: pd.DataFrame, n_items: int
) -> np.ndarray:
    """Which recommended items are relevant.

    Parameters
    ----------
    users : numpy.ndarray of int64, shape (U,)
    top_items : numpy.ndarray of int64, shape (U, k)
        Item indices, best first.
    relevant : pandas.DataFrame
        Held-out interactions with ``user_index`` and ``item_index`` columns.
    n_items : int

    Returns
    -------
    numpy.ndarray of bool, shape (U, k)
    """
    relevant_keys = _pair_keys(
        relevant["user_index"].to_numpy(), relevant["item_index"].to_numpy(), n_items
    )
    keys = _pair_keys(
        np.repeat(users, top_items.shape[1]).reshape(top_items.shape), top_items, n_items
    )
    return np.isin(keys, relevant_keys)


def ranking_metrics(
    users: np.ndarray, top_items: np.ndarray, relevant: pd.DataFrame, n_items: int
) -> pd.DataFrame:
    """Per-user Precision, Recall, F1, NDCG, MAP and HitRate at k = ``top_items.shape[1]``.

    Each metric lies in [0, 1]; a perfect list scores 1 for all of them except
    precision and recall, whose best values are ``min(n_relevant, k) / k`` and
    ``min(n_relevant, k) / n_relevant``.

    - precision@k: relevant items in the list / k
    - recall@k: relevant items in the list / all relevant items of the user
    - f1@k: harmonic mean of the user's precision@k and recall@k (0 when both are 0)
    - ndcg@k: DCG with gain 1 and discount 1 / log2(rank + 1), divided by the DCG
      of an ideal list with ``min(n_relevant, k)`` hits at the top
    - map@k: mean over hit ranks of precision at that rank, divided by
      ``min(n_relevant, k)`` (average precision at k)
    - hit_rate@k: 1 when the list holds at least one relevant item

    Returns
    -------
    pandas.DataFrame
        One row per user with at least one relevant item: ``user_index``,
        ``n_relevant`` and one column per metric.
    """
    k = top_items.shape[1]
    # A pair listed twice is still one relevant item.
    relevant = relevant[["user_index", "item_index"]].drop_duplicates()
    n_relevant_all = np.bincount(
        relevant["user_index"].to_numpy(), minlength=int(users.max(initial=0)) + 1
    )
    n_relevant = n_relevant_all[users] if len(users) else np.zeros(0, dtype=np.int64)
    hits = hit_matrix(users, top_items, relevant, n_items).astype(np.float64)  # (U, k)
    keep = n_relevant > 0
    users, hits, n_relevant = users[keep], hits[keep], n_relevant[keep]

    ranks = np.arange(1, k + 1)
    n_hits = hits.sum(1)
    precision = n_hits / k
    recall = n_hits / n_relevant
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(n_hits > 0, 2 * precision * recall / (precision + recall), 0.0)
    discounts = 1.0 / np.log2(ranks + 1)  # (k,)
    dcg = hits @ discounts
    ideal_hits = np.minimum(n_relevant, k)
    idcg = np.cumsum(discounts)[ideal_hits - 1]
    precision_at_rank = np.cumsum(hits, axis=1) / ranks  # (U, k)
    average_precision = (precision_at_rank * hits).sum(1) / ideal_hits
    return pd.DataFrame(
        {
            "user_index": users,
            "n_relevant": n_relevant,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "ndcg": dcg / idcg,
            "map": average_precision,
            "hit_rate": (n_hits > 0).astype(np.float64),
        }
    )


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half).

    In [0, 1]; 0.5 is chance, 1 is a perfect separation.
    """
    scores = np.concatenate([positive_scores, negative_scores])
    # Average ranks give tied scores the same rank, which counts a tie as half a win.
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative score.")
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """The score threshold that maximises accuracy on these (validation) scores.

    Returns the midpoint between two neighbouring distinct scores, so the
    threshold separates them cleanly.
    """
    scores = np.concatenate([positive_scores, negative_scores])
    labels = np.concatenate([np.ones(len(positive_scores)), np.zeros(len(negative_scores))])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # Calling the top j + 1 scores positive: correct = positives among them + negatives below.
    correct = np.cumsum(labels) + (len(negative_scores) - np.cumsum(1 - labels))
    distinct = np.append(scores[1:] != scores[:-1], True)  # only cut between distinct scores
    correct = np.where(distinct, correct, -1)
    j = int(np.argmax(correct))
    if correct[j] <= len(negative_scores):
        # Calling nothing positive is at least as accurate: put the threshold above every score.
        return float(scores[0] + 1.0)
    if j + 1 >= len(scores):
        return float(scores[-1] - 1.0)
    return float((scores[j] + scores[j + 1]) / 2)


def classification_metrics(
    positive_scores: np.ndarray, negative_scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive class) and AUC of a binary decision.

    A pair is predicted positive when its score is above ``threshold``. All
    values lie in [0, 1]; on balanced pairs, chance accuracy is 0.5.
    """
    true_pos = float((positive_scores > threshold).sum())
    false_pos = float((negative_scores > threshold).sum())
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    true_neg = n_neg - false_pos
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (true_pos + true_neg) / (n_pos + n_neg),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(positive_scores, negative_scores),
    }


def _shares(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float64, refused unless finite, non-negative and not all zero."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{what} needs finite, non-negative values (counts, say); got others.")
    if len(values) == 0 or values.sum() == 0:
        raise ValueError(f"{what} needs at least one positive value.")
    return values


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, near 1 when one holds all."""
    values = np.sort(_shares(values, "The Gini coefficient"))
    n = len(values)
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * values).sum()) / (n * values.sum()) - (n + 1) / n)


def lorenz_curve(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of the total held by the poorest share of entities.

    Returns ``(population_share, value_share)``, both of shape (n + 1,) from 0 to 1.
    """
    values = np.sort(_shares(values, "A Lorenz curve"))
    value_share = np.concatenate([[0.0], np.cumsum(values) / values.sum()])
    population_share = np.linspace(0.0, 1.0, len(values) + 1)
    return population_share, value_share
