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

from tailrec.checks import require_whole_number
from tailrec.metrics import RANKING_METRICS, best_threshold, classification_metrics, ranking_metrics
from tailrec.model import BilinearModel

Scorer = Callable[[np.ndarray], np.ndarray]


def model_scorer(model: BilinearModel) -> Scorer:
    """Wrap a trained model as a scorer (no gradients, scores returned on the CPU)."""

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            batch = torch.tensor(users, dtype=torch.long, device=model.W.device)
            return model.score_all(batch).float().cpu().numpy()

    return score


def text_user_scorer(model: BilinearModel, user_features: np.ndarray) -> Scorer:
    """Score users as if the model had never seen their IDs: text features only.

    ``user_features`` (n_users, F) holds the text features to use for each user
    index, e.g. profile-only texts to simulate brand-new users.
    """
    features = torch.as_tensor(user_features, dtype=torch.float32)

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            user_vecs = model.user_vectors_from_text(features[torch.as_tensor(users)])
            return model.score_all(user_vecs=user_vecs).float().cpu().numpy()

    return score


def text_item_scorer(model: BilinearModel) -> Scorer:
    """Score every item from its text features alone, as if none had been seen in training.

    The ID embedding and the learned item bias are left out, since a new item has neither.
    """

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            item_vecs = model.item_vectors_from_text(model.item_features)
            user_vecs = model.user_vectors(torch.as_tensor(users, device=model.W.device))
            return model.score_vectors(user_vecs, item_vecs).float().cpu().numpy()

    return score


def interaction_rows(history: pd.DataFrame, n_items: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function from user indices to their 0/1 rows of ``history``, (B, n_items) float64.

    Users absent from ``history`` get rows of zeros.
    """
    by_user = history.groupby("user_index")["item_index"].apply(np.unique).to_dict()

    def rows(users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), n_items))
        for row, user in enumerate(users):
            out[row, by_user.get(int(user), [])] = 1.0
        return out

    return rows


def tie_break_keys(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per (user, item) pair that orders tied scores.

    Ordering ties by item index would always favour low ids (in MovieLens, the
    oldest catalogue entries); a hash of the pair is fair, and the same on
    every run and machine.
    """
    x = (users.astype(np.uint64) << np.uint64(32)) ^ items.astype(np.uint64)
    # The splitmix64 finaliser: every input bit affects every output bit.
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _best_k(scores: np.ndarray, user: int, k: int) -> np.ndarray:
    """The k best items of one row: highest score first, ties by :func:`tie_break_keys`."""
    # Every item that could be among the k best: scores at or above the k-th best.
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= kth)
    keys = tie_break_keys(np.full(len(candidates), user), candidates)
    order = np.lexsort((keys, -scores[candidates]))
    return candidates[order[:k]]


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
        List length, from 1 to the number of items.
    seen : sequence of pandas.DataFrame
        Interactions (``user_index``, ``item_index``) to exclude from the lists,
        normally the training (and, for the test set, validation) data.
    chunk_size : int
        Users scored at once, so memory stays bounded by ``chunk_size * n_items``.

    Returns
    -------
    numpy.ndarray of int64, shape (U, k)
        Item indices, best first. Equal scores are ordered by a fixed hash of
        (user, item) (:func:`tie_break_keys`), never by item index. A user with
        fewer than ``k`` unseen items gets seen items (score ``-inf``) at the end
        of the list.
    """
    users = np.asarray(users, dtype=np.int64)
    require_whole_number("k", k, minimum=1)
    seen_pairs = pd.concat([s[["user_index", "item_index"]] for s in seen]) if seen else None
    out = []
    for start in range(0, len(users), chunk_size):
        chunk = users[start : start + chunk_size]
        scores = np.array(scorer(chunk), dtype=np.float64, copy=True)  # (B, n_items)
        if k > scores.shape[1]:
            raise ValueError(f"k must be at most the number of items, {scores.shape[1]}; got {k}.")
        if np.isnan(scores).any():
            raise ValueError(
                "The scorer returned NaN scores, which cannot be ranked; check the model for "
                "NaN weights (retrain it) or the features it reads."
            )
        if seen_pairs is not None:
            # A merge maps each seen pair to every row of its user (a user may appear twice).
            rows = pd.DataFrame({"user_index": chunk, "row": np.arange(len(chunk))})
            mine = rows.merge(seen_pairs, on="user_index")
            scores[mine["row"].to_numpy(), mine["item_index"].to_numpy()] = -np.inf
        out.append(
            np.stack([_best_k(row, int(u), k) for u, row in zip(chunk, scores, strict=True)])
        )
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
    known_per_user = np.bincount(known_keys // n_items)
    full = np.flatnonzero(known_per_user >= n_items)
    if np.isin(users, full).any():
        raise ValueError(
            f"{len(full)} users have interacted with every item, so no negative item can be "
            "drawn for them; leave those users out of the evaluation."
        )
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
