"""New-item cold start: films nobody has rated, ranked for users through their text alone.

The protocol (:func:`new_item_split`): a seeded share of the films (10% by
default) is held out entirely, so that none of their interactions is in the
training or the validation data. Every model learns from the remaining
(warm) films only. The test set holds the interactions with the new films of
users who also have warm training interactions; a user's warm interactions
are their history.

The candidate set is the new films only: each model ranks the held-out films
(and nothing else) for each test user, and Recall@k and NDCG@k are computed
per user by :func:`tailrec.evaluation.evaluate_ranking` and averaged over
the users (:func:`evaluate_new_items`). A new-item scorer therefore returns
one column per new film, in the order of :attr:`NewItemSplit.new_items`.

The models (:func:`compare_new_items`):

- ``tailrec``: a :class:`~tailrec.history_model.HistoryBilinearModel`
  trained on the warm catalogue only, so that the new films are never
  softmax negatives (the model would learn to push them down, and the
  measurement would say nothing about their text). A new film is scored by
  its text alone (:meth:`~tailrec.history_model.HistoryBilinearModel.item_vectors_from_text`):
  no ID embedding and a neutral bias. Its epochs are chosen by early
  stopping on a validation split of the warm data, then it is refit on all
  warm data for that many epochs.
- ``tailrec_no_ssl``: the same without the contrastive ID-text alignment
  (``ssl_weight = 0``), which is the part meant to tie text to what the IDs learn.
- ``content_cosine``: cosine similarity between the mean of the text
  embeddings of the user's history and each new film's text embedding.
- ``random``: seeded uniform scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from tailrec.baselines import random_scorer
from tailrec.checks import require_whole_number
from tailrec.evaluation import Scorer, evaluate_ranking, interaction_rows
from tailrec.history_model import (
    HistoryBilinearModel,
    HistoryModelConfig,
    check_indices,
    history_matrix,
    train_history_model,
)
from tailrec.splits import check_disjoint, holdout_mask

NEW_ITEM_MODELS = ("tailrec", "tailrec_no_ssl", "content_cosine", "random")
NEW_ITEM_METRICS = ("recall", "ndcg")


@dataclass(frozen=True)
class NewItemSplit:
    """Warm training and validation data, and the test interactions with the new films.

    Attributes
    ----------
    new_items : numpy.ndarray of int64
        Sorted indices of the held-out films; the candidate set, in column order.
    warm_items : numpy.ndarray of int64
        Sorted indices of every other film that has interactions.
    train, validation : pandas.DataFrame
        Interactions with warm films only (full-catalogue ``item_index``).
    test : pandas.DataFrame
        Interactions with new films, of users who have warm training interactions.
    """

    new_items: np.ndarray
    warm_items: np.ndarray
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def __post_init__(self) -> None:
        check_disjoint(self.train, self.validation, self.test)

    @property
    def warm(self) -> pd.DataFrame:
        """Every warm interaction (train + validation): the users' histories at test time."""
        return pd.concat([self.train, self.validation], ignore_index=True)


def new_item_split(
    interactions: pd.DataFrame,
    new_fraction: float = 0.1,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> NewItemSplit:
    """Hold out ``new_fraction`` of the films with interactions, and all of their interactions.

    Parameters
    ----------
    interactions : pandas.DataFrame
        With ``user_index`` and ``item_index`` columns.
    new_fraction : float
        Share of the films (among those with at least one interaction) to hold
        out, in (0, 1); at least one film is held out and at least one kept.
    val_fraction : float
        Share of each user's warm interactions, drawn at random, kept for
        early stopping; every user keeps at least one for training.
    seed : int
        Seeds the films drawn and the validation draw.

    Returns
    -------
    NewItemSplit
    """
    missing = {"user_index", "item_index"} - set(interactions.columns)
    if missing:
        raise ValueError(
            f"interactions lacks the column(s) {', '.join(sorted(missing))}; pass interactions "
            "with 0-based user_index and item_index, as tailrec.data.load_movielens makes."
        )
    for name, value in (("new_fraction", new_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}.")
    require_whole_number("seed", seed, minimum=0)
    items = np.unique(interactions["item_index"].to_numpy())
    n_new = round(new_fraction * len(items))
    if not 1 <= n_new < len(items):
        raise ValueError(
            f"Holding out {new_fraction} of {len(items)} films leaves {n_new} new and "
            f"{len(items) - n_new} warm; both need at least one: use more films or another "
            "new_fraction."
        )
    rng = np.random.default_rng(seed)
    new_items = np.sort(rng.choice(items, size=n_new, replace=False))
    is_new = interactions["item_index"].isin(new_items).to_numpy()
    warm = interactions[~is_new]
    val_mask = holdout_mask(warm, "user_index", val_fraction, rng.random(len(warm)), min_kept=1)
    train = warm[~val_mask].reset_index(drop=True)
    # Only users with a warm history can be asked about new films through it.
    tested = is_new & interactions["user_index"].isin(train["user_index"]).to_numpy()
    return NewItemSplit(
        new_items=new_items,
        warm_items=np.setdiff1d(items, new_items),
        train=train,
        validation=warm[val_mask].reset_index(drop=True),
        test=interactions[tested].reset_index(drop=True),
    )


def evaluate_new_items(scorer: Scorer, split: NewItemSplit, k: int = 10) -> pd.DataFrame:
    """Per-user ranking metrics at ``k`` with the new films as the only candidates.

    ``scorer`` maps users to scores of shape (B, len(split.new_items)), one
    column per new film in the order of ``split.new_items``. Nothing is
    excluded as seen: by construction no user has a new film in their history.
    Returns the frame of :func:`tailrec.metrics.ranking_metrics`, one row per test user.
    """
    require_whole_number("k", k, minimum=1)
    n_new = len(split.new_items)
    if k > n_new:
        raise ValueError(
            f"k = {k} is larger than the candidate set ({n_new} new films); lower k or hold "
            "out more films (new_fraction)."
        )

    def checked(users: np.ndarray) -> np.ndarray:
        scores = np.asarray(scorer(users))
        if scores.shape != (len(users), n_new):
            raise ValueError(
                f"A new-item scorer must return one column per new film, shape "
                f"({len(users)}, {n_new}); got {scores.shape}."
            )
        return scores

    # Candidate positions 0..n_new-1 stand in for the films' catalogue indices.
    relevant = split.test.assign(
        item_index=np.searchsorted(split.new_items, split.test["item_index"].to_numpy())
    )
    return evaluate_ranking(checked, relevant, [], n_new, k)


def _to_local(interactions: pd.DataFrame, items: np.ndarray) -> pd.DataFrame:
    """Re-index ``interactions`` of ``items`` (sorted) to positions 0..len(items)-1."""
    positions = np.searchsorted(items, interactions["item_index"].to_numpy())
    return interactions.assign(item_index=positions)


def fit_warm_model(
    split: NewItemSplit,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    config: HistoryModelConfig,
    device: torch.device | str = "cpu",
) -> tuple[HistoryBilinearModel, int]:
    """Train a history model on the warm films only; return it (on the CPU) and its epochs.

    The model's catalogue is ``split.warm_items`` (item ``j`` of the model is
    film ``split.warm_items[j]``), so the new films are never negatives. The
    epochs are chosen by early stopping on ``split.validation``; the model
    returned is refit on train + validation for that many epochs.
    """
    if len(split.warm_items) < config.eval_k:
        raise ValueError(
            f"The warm catalogue has {len(split.warm_items)} films, fewer than eval_k = "
            f"{config.eval_k}; set HistoryModelConfig(eval_k=...) to at most that."
        )
    items = torch.as_tensor(item_features[split.warm_items], dtype=torch.float32)
    profiles = torch.as_tensor(profile_features, dtype=torch.float32)
    train = _to_local(split.train, split.warm_items)
    validation = _to_local(split.validation, split.warm_items)
    probe = HistoryBilinearModel(items, profiles, config)
    epochs = train_history_model(probe, train, validation, profiles, device).best_epoch
    final = HistoryBilinearModel(items, profiles, config)
    full = pd.concat([train, validation], ignore_index=True)
    train_history_model(final, full, None, profiles, device, epochs=epochs)
    return final.cpu().eval(), epochs


def text_only_scorer(
    model: HistoryBilinearModel,
    history: pd.DataFrame,
    profile_features: np.ndarray | torch.Tensor,
    new_item_features: np.ndarray | torch.Tensor,
) -> Scorer:
    """Score films the model never saw from their text: ``u W P_item(text)ᵀ``, bias 0.

    Parameters
    ----------
    model : HistoryBilinearModel
        Trained; on the CPU.
    history : pandas.DataFrame
        The users' interactions in the model's own item indices.
    profile_features : array, shape (n_users, F)
    new_item_features : array, shape (N, F)
        Text features of the films to score; column ``j`` of the scores is row ``j``.
    """
    profiles = torch.as_tensor(profile_features, dtype=torch.float32)
    new_features = torch.as_tensor(new_item_features, dtype=torch.float32)
    check_indices(history, len(profiles), model.n_items)
    matrix = history_matrix(history, len(profiles), model.n_items)

    def score(users: np.ndarray) -> np.ndarray:
        model.eval()
        batch = torch.as_tensor(users, dtype=torch.long)
        with torch.no_grad():
            items = model.item_vectors_from_text(new_features)  # (N, d)
            rows = matrix.index_select(0, batch).to_dense()
            user_vectors = model.user_vectors(rows, profiles[batch])  # (B, d)
            return (user_vectors @ model.W @ items.T).numpy()  # (B, N)

    return score


def content_cosine_scorer(
    history: pd.DataFrame, item_features: np.ndarray, new_items: np.ndarray
) -> Scorer:
    """Cosine between the mean text embedding of a user's history and each new film's.

    ``history`` and ``new_items`` use catalogue indices (rows of ``item_features``).
    A user with no history scores 0 everywhere.
    """
    features = np.asarray(item_features, dtype=np.float64)
    features = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
    rows = interaction_rows(history, len(features))
    candidates = features[new_items]  # (N, F)

    def score(users: np.ndarray) -> np.ndarray:
        means = rows(users) @ features  # the sum; only its direction matters for the cosine
        means /= np.linalg.norm(means, axis=1, keepdims=True).clip(min=1e-12)
        return means @ candidates.T

    return score


def new_item_builders(
    split: NewItemSplit,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    config: HistoryModelConfig,
    device: torch.device | str,
    info: dict,
) -> dict[str, Callable[[], Scorer]]:
    """Each model as a function that fits it; tailrec's chosen epochs go into ``info``."""
    warm_history = _to_local(split.warm, split.warm_items)
    new_features = item_features[split.new_items]

    def tailrec(name: str, model_config: HistoryModelConfig) -> Callable[[], Scorer]:
        def build() -> Scorer:
            model, epochs = fit_warm_model(
                split, item_features, profile_features, model_config, device
            )
            info[f"{name}_epochs"] = epochs
            return text_only_scorer(model, warm_history, profile_features, new_features)

        return build

    return {
        "tailrec": tailrec("tailrec", config),
        "tailrec_no_ssl": tailrec("tailrec_no_ssl", replace(config, ssl_weight=0.0)),
        "content_cosine": lambda: content_cosine_scorer(split.warm, item_features, split.new_items),
        "random": lambda: random_scorer(len(split.new_items), config.seed),
    }


def compare_new_items(
    interactions: pd.DataFrame,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    seed: int = 42,
    max_epochs: int | None = None,
    k: int = 10,
    new_fraction: float = 0.1,
    config: HistoryModelConfig | None = None,
    device: torch.device | str = "cpu",
    echo: Callable[..., None] | None = None,
) -> pd.DataFrame:
    """Run every model of the module on one new-item split; return a tidy table.

    Parameters
    ----------
    interactions : pandas.DataFrame
        ``user_index`` and ``item_index`` of every interaction.
    item_features : numpy.ndarray, shape (n_items, F)
        Text-encoder features of every film (one row per ``item_index``).
    profile_features : numpy.ndarray, shape (n_users, F)
        Profile features of every user; the history model needs them, though
        with its default ``use_profile=False`` they do not change the scores.
    seed : int
        Seeds the split, the models and the random baseline.
    max_epochs : int, optional
        Caps tailrec's epochs (for quick checks).
    k : int
        List length; at most the number of new films.
    new_fraction : float
        Share of the films held out as new.
    config : HistoryModelConfig, optional
        tailrec's settings; ``HistoryModelConfig(seed=seed)`` when None.
    device : torch.device or str
        Where tailrec trains.
    echo : callable, optional
        Called with one progress line per model (e.g. ``print``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``metric`` (``recall@k``, ``ndcg@k``), ``value`` (the
        mean over users) and ``users`` (test users averaged). ``attrs["run"]``
        holds the split's sizes, tailrec's chosen epochs and each fit's seconds.
    """
    require_whole_number("seed", seed, minimum=0)
    require_whole_number("k", k, minimum=1)
    if max_epochs is not None:
        require_whole_number("max_epochs", max_epochs, minimum=1)
    item_features = np.asarray(item_features, dtype=np.float32)
    profile_features = np.asarray(profile_features, dtype=np.float32)
    split = new_item_split(interactions, new_fraction, seed=seed)  # checks the columns first
    check_indices(interactions, len(profile_features), len(item_features))
    if k > len(split.new_items):
        raise ValueError(
            f"k = {k} is larger than the candidate set ({len(split.new_items)} new films); "
            "lower k or raise new_fraction."
        )
    config = (config or HistoryModelConfig(seed=seed)).capped(max_epochs)
    run = {
        "new_items": len(split.new_items),
        "warm_items": len(split.warm_items),
        "test_interactions": len(split.test),
    }
    builders = new_item_builders(split, item_features, profile_features, config, device, run)
    rows = []
    for name, build in builders.items():
        started = time.perf_counter()
        scorer = build()
        run[f"{name}_fit_seconds"] = round(time.perf_counter() - started, 2)
        per_user = evaluate_new_items(scorer, split, k)
        rows += [
            {
                "model": name,
                "metric": f"{metric}@{k}",
                "value": float(per_user[metric].mean()),
                "users": len(per_user),
            }
            for metric in NEW_ITEM_METRICS
        ]
        if echo is not None:
            summary = ", ".join(f"{row['metric']} {row['value']:.4f}" for row in rows[-2:])
            echo(f"new items  {name:<15} {summary}  ({len(per_user)} users)", flush=True)
    results = pd.DataFrame(rows, columns=["model", "metric", "value", "users"])
    results.attrs["run"] = run
    return results
