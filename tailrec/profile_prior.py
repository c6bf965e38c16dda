"""What a user is likely to pick, from their profile text (and first few ratings).

A user with no ratings can only be described by their profile. Learning a
projection of the profile text into the model's space memorises: on
MovieLens-100k the profile sentence (age band, gender, occupation, region)
is nearly unique per user. This prior generalises instead, by looking at
the ``k`` training users whose profile embeddings are closest:

    p(i | profile) = mix * (share of i among the neighbours' interactions)
                     + (1 - mix) * (share of i among all interactions)

``k`` and ``mix`` are chosen by leave-one-out on training users: each is
scored from their own profile with themselves left out of the neighbours,
against the items they really rated. No validation or test data is used.

A user's first few ratings can join the profile in choosing neighbours
(``history_weight``): the neighbours are then the users with similar
profiles who rated the same films, a user-based nearest-neighbour model
that needs no training and so serves a user who arrived a minute ago.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tailrec.checks import require_whole_number
from tailrec.evaluation import Scorer, evaluate_ranking, interaction_rows

NEIGHBOUR_GRID = (20, 50, 100, 200)
MIX_GRID = (0.3, 0.6, 1.0)


@dataclass
class ProfilePrior:
    """Item probabilities for a profile, from the nearest training profiles.

    Attributes
    ----------
    profiles : numpy.ndarray, shape (n_users, F)
        Unit-length profile embeddings of every user index.
    neighbours : numpy.ndarray of int64
        The training users that can be neighbours (those with interactions).
    counts : numpy.ndarray, shape (len(neighbours), n_items)
        Their 0/1 interaction rows.
    k : int
        Neighbours per user.
    mix : float
        Weight of the neighbours' distribution against the global one.
    """

    profiles: np.ndarray
    neighbours: np.ndarray
    counts: np.ndarray
    k: int = 100
    mix: float = 0.6

    def __post_init__(self) -> None:
        require_whole_number("ProfilePrior.k", self.k, minimum=1)
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"ProfilePrior.mix must be in [0, 1], got {self.mix!r}.")

    @classmethod
    def fit(
        cls,
        profile_features: np.ndarray,
        interactions: pd.DataFrame,
        n_items: int,
        k: int = 100,
        mix: float = 0.6,
    ) -> ProfilePrior:
        """A prior over ``interactions`` for profiles (n_users, F), one row per user index."""
        profiles = np.asarray(profile_features, dtype=np.float64)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        if not np.isfinite(profiles).all() or (norms == 0).any():
            raise ValueError(
                "profile_features must be finite and non-zero in every row; "
                "re-encode the profile texts with an empty embedding cache."
            )
        neighbours = np.unique(interactions["user_index"].to_numpy())
        if len(neighbours) == 0:
            raise ValueError("A profile prior needs interactions; none were given.")
        rows = np.searchsorted(neighbours, interactions["user_index"].to_numpy())
        counts = np.zeros((len(neighbours), n_items))
        counts[rows, interactions["item_index"].to_numpy()] = 1.0
        return cls(profiles / norms, neighbours, counts, min(k, len(neighbours)), mix)

    def log_probabilities(
        self,
        users: np.ndarray,
        leave_self_out: bool = False,
        history: np.ndarray | None = None,
        history_weight: float = 0.0,
    ) -> np.ndarray:
        """log p(i | profile, history) of every item, (len(users), n_items).

        With ``history`` (the users' 0/1 rows, (len(users), n_items)) and a
        positive ``history_weight``, neighbours are chosen by profile
        similarity plus ``history_weight`` times the cosine between histories,
        so a user's first few ratings move them towards people who rated the
        same films.
        """
        users = np.asarray(users, dtype=np.int64)
        overall = self.counts.sum(0) / self.counts.sum()
        similarity = self.profiles[users] @ self.profiles[self.neighbours].T  # (B, n_neighbours)
        if history is not None and history_weight > 0:
            overlap = history @ self.counts.T  # (B, n_neighbours) shared items
            norms = np.sqrt(history.sum(1, keepdims=True) * self.counts.sum(1)[None, :])
            similarity = similarity + history_weight * overlap / np.maximum(norms, 1.0)
        if leave_self_out:
            similarity[users[:, None] == self.neighbours[None, :]] = -np.inf
        k = min(self.k, len(self.neighbours) - int(leave_self_out))
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        local = self.counts[nearest].sum(1)  # (B, n_items)
        local /= np.maximum(local.sum(1, keepdims=True), 1.0)
        # A small floor keeps items nobody rated finite, ranked last.
        return np.log(self.mix * local + (1 - self.mix) * overall + 1e-12)

    def scorer(
        self,
        leave_self_out: bool = False,
        history: pd.DataFrame | None = None,
        history_weight: float = 0.0,
    ) -> Scorer:
        """A scorer; with ``history`` (interactions) and ``history_weight``, see above."""
        if history is None or history_weight == 0:
            return lambda users: self.log_probabilities(users, leave_self_out)
        rows_of = interaction_rows(history, self.counts.shape[1])
        return lambda users: self.log_probabilities(
            users, leave_self_out, rows_of(users), history_weight
        )


def fit_profile_prior(
    profile_features: np.ndarray,
    interactions: pd.DataFrame,
    n_items: int,
    sample_users: int = 200,
    seed: int = 42,
    eval_k: int = 10,
) -> tuple[ProfilePrior, float]:
    """A :class:`ProfilePrior` with ``k`` and ``mix`` chosen by leave-one-out; and its NDCG@eval_k.

    ``sample_users`` training users (drawn with ``seed``) are each ranked from
    their profile, with themselves left out, against all their own items.
    """
    prior = ProfilePrior.fit(profile_features, interactions, n_items)
    rng = np.random.default_rng(seed)
    users = rng.permutation(prior.neighbours)[:sample_users]
    own = interactions[interactions["user_index"].isin(users)]
    best, best_ndcg = prior, -np.inf
    for k in NEIGHBOUR_GRID:
        for mix in MIX_GRID:
            candidate = ProfilePrior(
                prior.profiles, prior.neighbours, prior.counts, min(k, len(prior.neighbours)), mix
            )
            scorer = candidate.scorer(leave_self_out=True)
            per_user = evaluate_ranking(scorer, own, [], n_items, min(eval_k, n_items))
            ndcg = float(per_user["ndcg"].mean())
            if ndcg > best_ndcg:
                best, best_ndcg = candidate, ndcg
    return best, best_ndcg
