"""Simulated feedback from real held-out data, round after round.

A recommender shows each user ``k`` items per round. An item counts as a
**click** when the user really rated it in the held-out future, and as a
**purchase** (a conversion) when that rating is 4 or more. Nothing is
invented: a user who would have liked a film they never rated counts as a
miss, so the figures are a lower bound on what real users would do.

Items shown once are not shown again. After each round a recommender may
**update** from the clicks: a recommender here is built from a history of
interactions (:data:`HistoryRecommender`), and the update rebuilds it with
the clicks added to that history, without retraining anything. Models whose
users are built from their history (:mod:`tailrec.recommender`) move at
once; a popularity list does not move at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tailrec.checks import require_whole_number
from tailrec.evaluation import Scorer, top_k_items

# A recommender as a function of the interactions it may use.
HistoryRecommender = Callable[[pd.DataFrame], Scorer]

PURCHASE_RATING = 4


@dataclass
class FeedbackLog:
    """One row per (round, user, shown item): ``clicked`` and ``purchased`` flags."""

    shown: pd.DataFrame

    def rates(self, segments: pd.Series | None = None) -> pd.DataFrame:
        """CTR and conversion rate per round (and per segment), over shown items.

        CTR is clicks / shown, conversion rate is purchases / shown.
        """
        frame = self.shown
        keys = ["round"]
        if segments is not None:
            frame = frame.assign(segment=segments.loc[frame["user_index"]].to_numpy())
            keys.append("segment")
        grouped = frame.groupby(keys)
        return pd.DataFrame(
            {
                "shown": grouped.size(),
                "ctr": grouped["clicked"].mean(),
                "conversion": grouped["purchased"].mean(),
            }
        )


def simulate_feedback(
    recommender: HistoryRecommender,
    history: pd.DataFrame,
    future: pd.DataFrame,
    users: np.ndarray,
    rounds: int = 5,
    k: int = 10,
    update: bool = True,
) -> FeedbackLog:
    """Run ``rounds`` rounds of recommendations for ``users`` and record the feedback.

    Parameters
    ----------
    recommender : HistoryRecommender
        Builds a scorer from a history of interactions.
    history : pandas.DataFrame
        What the recommender may use at the start (``user_index``, ``item_index``).
    future : pandas.DataFrame
        The held-out interactions (``user_index``, ``item_index``, ``rating``):
        the only source of clicks and purchases.
    users : numpy.ndarray
        The users to serve.
    rounds, k : int
        Rounds, and items shown per user per round.
    update : bool
        Rebuild the recommender after each round with the clicks added to
        the history (a fold-in); otherwise it stays as it started.
    """
    require_whole_number("rounds", rounds, minimum=1)
    require_whole_number("k", k, minimum=1)
    missing = {"user_index", "item_index", "rating"} - set(future.columns)
    if missing:
        raise ValueError(f"future lacks the column(s) {', '.join(sorted(missing))}.")
    users = np.asarray(users, dtype=np.int64)
    ratings = future.groupby(["user_index", "item_index"])["rating"].max()
    known = history[["user_index", "item_index"]].astype("int64")
    already_shown = known.iloc[:0]
    scorer = recommender(known)
    logs = []
    for round_number in range(1, rounds + 1):
        top = top_k_items(scorer, users, k, [known, already_shown])
        shown = pd.DataFrame(
            {
                "round": round_number,
                "user_index": np.repeat(users, k),
                "item_index": top.ravel(),
            }
        )
        rating = ratings.reindex(pd.MultiIndex.from_frame(shown[["user_index", "item_index"]]))
        shown["clicked"] = rating.notna().to_numpy()
        shown["purchased"] = (rating >= PURCHASE_RATING).to_numpy()
        logs.append(shown)
        already_shown = pd.concat([already_shown, shown[["user_index", "item_index"]]])
        if update and round_number < rounds:
            clicks = shown.loc[shown["clicked"], ["user_index", "item_index"]]
            known = pd.concat([known, clicks], ignore_index=True)
            scorer = recommender(known)
    return FeedbackLog(pd.concat(logs, ignore_index=True))
