"""tailrec's full recommender: the history model, an item-item term and a profile prior.

Three scores, each a log-probability or on a comparable scale, add up:

    score(i | u) = log p_model(i | history)            (:mod:`tailrec.history_model`)
                 + w * (x B)_i                          (EASE's item-item term)
                 + lam * log p_prior(i | profile)       (:mod:`tailrec.profile_prior`)

The item-item term ``x B`` is itself a bilinear form, with the user's 0/1
history ``x`` as ``u``, a one-hot item as ``i`` and the closed-form
item-item matrix ``B`` as ``W``. It is full-rank where the learned ``W`` is
low-rank, so it keeps pair-wise co-occurrences that a 128-dimensional space
blurs, while the history model brings item text and a popularity prior.

A user with no history at all is scored by the profile prior alone (or by
the model's item bias when the prior is left out): nothing else knows
anything about them. A user with a short history gets a blend of the two,
and the more they have rated, the more the sum above counts
(:func:`trust_by_history`).

Every choice is made on data the test never sees: the model's epochs, EASE's
``l2`` and the weights ``w`` and ``lam`` on the validation split (each grid
holds 0, so a part that does not help is dropped), the prior's settings by
leave-one-out on training users, and the gate on training users held out to
play new users (:func:`new_user_check`). Then every part is refit on train +
validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tailrec.baselines import ease_item_weights, fit_ease, item_item_scorer
from tailrec.evaluation import Scorer, evaluate_ranking
from tailrec.history_model import (
    HistoryBilinearModel,
    HistoryModelConfig,
    check_indices,
    history_scorer,
    train_history_model,
)
from tailrec.profile_prior import ProfilePrior, fit_profile_prior

ITEM_ITEM_WEIGHTS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
TRUST_COUNTS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
PRIOR_HISTORY_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)


def blend_scorers(*parts: tuple[float, Scorer]) -> Scorer:
    """The weighted sum of scorers, given as ``(weight, scorer)`` pairs; zero weights skipped."""
    used = [(weight, scorer) for weight, scorer in parts if weight != 0]
    if not used:
        raise ValueError("blend_scorers needs at least one part with a non-zero weight.")

    def score(users: np.ndarray) -> np.ndarray:
        return sum(weight * np.asarray(scorer(users)) for weight, scorer in used)

    return score


def trust_by_history(
    warm: Scorer, cold: Scorer, history: pd.DataFrame, trust_count: float
) -> Scorer:
    """Blend ``warm`` and ``cold`` scores by how much history each user has.

    A user with ``n`` interactions in ``history`` gets ``g * warm + (1 - g) * cold``
    with ``g = n² / (n² + trust_count²)``: no history means the cold scores
    alone, a history of ``trust_count`` items counts half, and a longer one
    counts for more. ``trust_count = 0`` trusts any history fully, and an
    infinite one never does.
    """
    users_seen = history["user_index"].to_numpy()
    counts = np.bincount(users_seen) if len(users_seen) else np.zeros(0, dtype=np.int64)

    def score(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        n = np.zeros(len(users))
        inside = users < len(counts)
        n[inside] = counts[users[inside]]
        with np.errstate(invalid="ignore"):
            g = np.where(n > 0, n**2 / (n**2 + trust_count**2), 0.0)[:, None]
        scores = np.array(cold(users), dtype=np.float64)
        if (g > 0).any():
            scores = g * np.asarray(warm(users), dtype=np.float64) + (1 - g) * scores
        return scores

    return score


@dataclass
class NewUserCheck:
    """Training users held out to play new users, for choosing how much to trust a short history.

    ``train`` is the training data without them; ``shown`` holds each one's
    earliest ``n`` interactions (``n`` cycling through the few-shot sizes) and
    ``hidden`` the rest of their interactions, to be ranked.
    """

    train: pd.DataFrame
    shown: pd.DataFrame
    hidden: pd.DataFrame


def new_user_check(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    shots: tuple[int, ...] = (0, 1, 3, 5, 10, 20),
    fraction: float = 0.2,
    seed: int = 42,
) -> NewUserCheck:
    """Hold out ``fraction`` of the users with more than ``max(shots)`` training interactions.

    With very few such users none may be held out; the weights that need
    them then keep their first grid value.
    """
    counts = train.groupby("user_index").size()
    eligible = np.sort(counts.index[counts > max(shots)].to_numpy())
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(eligible)[: round(fraction * len(eligible))]
    is_chosen = train["user_index"].isin(chosen).to_numpy()
    mine = train[is_chosen]
    if "timestamp" in mine.columns:
        mine = mine.sort_values(["user_index", "timestamp", "item_index"], kind="stable")
    position = mine.groupby("user_index").cumcount().to_numpy()
    shots_of = dict(zip(chosen, np.resize(np.asarray(shots), len(chosen)), strict=True))
    limit = mine["user_index"].map(shots_of).to_numpy()
    later = validation[validation["user_index"].isin(chosen)]
    return NewUserCheck(
        train=train[~is_chosen],
        shown=mine[position < limit],
        hidden=pd.concat([mine[position >= limit], later]),
    )


@dataclass
class Parts:
    """The fitted pieces of the recommender, for one body of training data.

    ``item_item`` is EASE's matrix ``B`` (None leaves the term out), ``prior``
    the profile prior (None leaves it out).
    """

    model: HistoryBilinearModel
    item_item: np.ndarray | None
    prior: ProfilePrior | None

    def scorer(
        self,
        history: pd.DataFrame,
        profiles: torch.Tensor,
        weights: Weights,
        user_steps: int = 0,
        memo: ScoreMemo | None = None,
    ) -> Scorer:
        """The combined scorer of users described by ``history``, with ``weights``.

        ``user_steps`` > 0 tunes each user's vector in the history model by
        that many gradient steps on their own history before scoring
        (:func:`tailrec.history_model.tune_user_vectors`). ``memo`` keeps
        each part's scores for reuse by other weights on the same ``history``.
        """
        memo = memo or ScoreMemo(budget_bytes=0)
        model = self.model.cpu().eval()
        model_part = memo.wrap(
            ("model", id(history), user_steps),
            lambda: history_scorer(
                model, history, profiles, log_probabilities=True, user_steps=user_steps
            ),
        )
        parts = [(1.0, model_part)]
        if self.item_item is not None:
            item_item = memo.wrap(
                ("item_item", id(history)), lambda: item_item_scorer(self.item_item, history)
            )
            parts.append((weights.item_item, item_item))
        if self.prior is not None:
            prior = memo.wrap(
                ("prior", id(history), weights.prior_history),
                lambda: self.prior.scorer(history=history, history_weight=weights.prior_history),
            )
            parts.append((weights.prior, prior))
        warm = blend_scorers(*parts)
        if weights.trust_count is None:
            return warm
        if self.prior is not None:
            cold = prior
        else:  # the model's own answer for an empty history: its item bias
            cold = memo.wrap(
                ("item_bias", id(history)),
                lambda: history_scorer(model, history.iloc[:0], profiles, log_probabilities=True),
            )
        return trust_by_history(warm, cold, history, weights.trust_count)


class ScoreMemo:
    """Scores already computed, per part and batch of users, kept within a byte budget.

    Choosing the weights scores the same users with the same parts many
    times, with only the weights changed; the parts' scores are computed once
    and reused (the sums that weigh them are not). Within ``budget_bytes``
    (default 512 MiB) results are kept; past it they are computed again, so a
    large catalogue costs time, not memory. Keys hold ``id()`` of the
    history frame: a memo must not outlive the frames it was used with.
    """

    def __init__(self, budget_bytes: int = 512 * 2**20) -> None:
        self.scores: dict[tuple, np.ndarray] = {}
        self.scorers: dict[tuple, Scorer] = {}
        self.left = budget_bytes

    def wrap(self, key: tuple, build: Callable[[], Scorer]) -> Scorer:
        """The scorer ``build()`` makes, built once per ``key``, remembering its scores."""
        if key not in self.scorers:
            self.scorers[key] = build()
        scorer = self.scorers[key]

        def score(users: np.ndarray) -> np.ndarray:
            entry = (key, np.asarray(users, dtype=np.int64).tobytes())
            if entry in self.scores:
                return self.scores[entry]
            scores = np.asarray(scorer(users))
            if scores.nbytes <= self.left:
                scores.flags.writeable = False  # shared: a caller must not change it in place
                self.scores[entry] = scores
                self.left -= scores.nbytes
            return scores

        return score


@dataclass(frozen=True)
class Weights:
    """How the parts are weighed: see the module docstring.

    ``trust_count`` None means no gate: every user gets the warm sum.
    """

    item_item: float = 0.0
    prior: float = 0.0
    prior_history: float = 0.0
    trust_count: float | None = None


def _fit_parts(
    train: pd.DataFrame,
    items: torch.Tensor,
    profiles: torch.Tensor,
    config: HistoryModelConfig,
    epochs: int,
    ease_l2: float | None,
    use_prior: bool,
    device: torch.device | str,
    state_path: Path | None = None,
) -> Parts:
    """Every part fitted on ``train``: the model for ``epochs``, EASE with ``ease_l2``.

    The prior's ``k`` and ``mix`` are chosen again by leave-one-out on this
    (larger) data; the weights chosen with the probe's prior carry over.
    ``ease_l2`` None leaves the item-item term out, ``use_prior`` False the prior.
    """
    model = HistoryBilinearModel(items, profiles, config)
    train_history_model(model, train, None, profiles, device, epochs=epochs, state_path=state_path)
    n_items = len(items)
    prior = None
    if use_prior:
        prior = fit_profile_prior(profiles.numpy(), train, n_items, seed=config.seed)[0]
    item_item = None if ease_l2 is None else ease_item_weights(train, n_items, ease_l2)
    return Parts(model, item_item, prior)


@dataclass
class TailrecFit:
    """The trained pieces of the recommender; :meth:`recommender` weighs them.

    ``probe`` is fitted on ``check.train`` (training data without the users
    held out to play new users) and is used only to choose weights;
    ``final`` is refitted on train + validation and does the recommending.
    """

    probe: Parts
    final: Parts
    check: NewUserCheck
    validation: pd.DataFrame
    full: pd.DataFrame
    profiles: torch.Tensor
    n_items: int
    eval_k: int
    info: dict

    def recommender(
        self, item_item: bool = True, profile_prior: bool = True
    ) -> tuple[Scorer, dict]:
        """The scorer with the chosen parts, and the weights chosen for them.

        Leaving a part out re-chooses the other weights without it, so an
        ablation is the best the remaining parts can do.
        """
        build, info = self.history_recommender(item_item, profile_prior)
        return build(self.full), info

    def history_recommender(
        self, item_item: bool = True, profile_prior: bool = True, user_steps: int = 0
    ) -> tuple[Callable[[pd.DataFrame], Scorer], dict]:
        """Like :meth:`recommender`, but as a function of the history the users have.

        Nothing is retrained when the history changes: ``build(history)``
        scores every user from ``history`` (their ratings so far, with new
        clicks added, or a brand-new user's first ratings) using the trained
        parts. This is the fold-in that :mod:`tailrec.feedback` relies on.
        ``user_steps`` adds a few gradient steps on each user's own vector
        (see :meth:`Parts.scorer`); the weights are chosen without them.
        """
        final, weights = self.chosen(item_item, profile_prior)
        info = {
            **self.info,
            "item_item_weight": weights.item_item,
            "prior_weight": weights.prior,
            "prior_history_weight": weights.prior_history,
            "trust_count": weights.trust_count,
        }
        if final.prior is not None:
            info |= {"prior_k": final.prior.k, "prior_mix": final.prior.mix}
        profiles = self.profiles
        return (lambda history: final.scorer(history, profiles, weights, user_steps)), info

    def chosen(self, item_item: bool = True, profile_prior: bool = True) -> tuple[Parts, Weights]:
        """The final parts (without those left out) and the weights chosen for them."""
        probe, final = self.probe, self.final
        if not item_item:
            probe, final = replace(probe, item_item=None), replace(final, item_item=None)
        if not profile_prior:
            probe, final = replace(probe, prior=None), replace(final, prior=None)
        history, profiles = self.check.train, self.profiles
        shown = pd.concat([history, self.check.shown])
        memo = ScoreMemo()  # every weight below is scored on the same users with the same parts

        def ndcg(weights: Weights, on_new_users: bool) -> float:
            if on_new_users:  # held-out users, shown their first few items
                scorer = probe.scorer(shown, profiles, weights, memo=memo)
                relevant, seen = self.check.hidden, shown
            else:
                scorer = probe.scorer(history, profiles, weights, memo=memo)
                relevant, seen = self.validation, history
            if len(relevant) == 0:  # too few users to hold any out: nothing to choose by
                return 0.0
            per_user = evaluate_ranking(scorer, relevant, [seen], self.n_items, self.eval_k)
            return float(per_user["ndcg"].mean())

        def warm_ndcg(weights: Weights) -> float:
            return ndcg(weights, on_new_users=False)

        def new_ndcg(weights: Weights) -> float:
            return ndcg(weights, on_new_users=True)

        def best(start: Weights, field: str, grid: tuple[float, ...], key) -> Weights:
            return max((replace(start, **{field: x}) for x in grid), key=key)

        # One weight at a time, each on the users it matters for: the item-item
        # and prior weights on warm users (validation); how far a few ratings
        # should move the prior's neighbours on the new users, served by the
        # prior alone (an infinite trust count); and the gate on the mean of
        # both, so that neither kind of user is sacrificed for the other.
        weights = Weights()
        if probe.item_item is not None:
            weights = best(weights, "item_item", ITEM_ITEM_WEIGHTS, warm_ndcg)
        if probe.prior is not None:
            weights = best(weights, "prior", PRIOR_WEIGHTS, warm_ndcg)
            cold = replace(weights, trust_count=math.inf)
            cold = best(cold, "prior_history", PRIOR_HISTORY_WEIGHTS, new_ndcg)
            weights = replace(weights, prior_history=cold.prior_history)
        weights = best(
            weights, "trust_count", TRUST_COUNTS, lambda w: (warm_ndcg(w) + new_ndcg(w)) / 2
        )
        return final, weights


def fit_tailrec_parts(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    item_features: np.ndarray,
    profile_features: np.ndarray | None,
    config: HistoryModelConfig | None = None,
    device: torch.device | str = "cpu",
    item_item: bool = True,
    state_dir: str | Path | None = None,
) -> TailrecFit:
    """Train every piece once: a probe to choose weights with, and the final parts.

    The probe leaves out the users that :func:`new_user_check` holds out; its
    epochs are chosen by early stopping on the other users' validation
    interactions, and EASE's ``l2`` on the same. The final parts are refit on
    train + validation with those settings.

    ``profile_features`` None (no profiles known) leaves the profile prior
    out; ``item_item`` False leaves EASE's term out, which a large catalogue
    needs: ``B`` is a dense (n_items, n_items) matrix. With ``state_dir``, the
    two trainings write their state there after every epoch and resume from
    it (:func:`tailrec.training.train`), so an interrupted fit continues.
    """
    config = config or HistoryModelConfig()
    n_items = len(item_features)
    if n_items < config.eval_k:
        raise ValueError(
            f"The catalogue has {n_items} items, fewer than the list length eval_k = "
            f"{config.eval_k}; set HistoryModelConfig(eval_k=...) to at most {n_items}."
        )
    items = torch.as_tensor(item_features, dtype=torch.float32)
    use_prior = profile_features is not None
    if profile_features is None:
        n_users = int(pd.concat([train["user_index"], validation["user_index"]]).max()) + 1
        profile_features = placeholder_profiles(n_users, items.shape[1])
    profiles = torch.as_tensor(profile_features, dtype=torch.float32)
    for name, frame in (("train", train), ("validation", validation)):
        missing = {"user_index", "item_index"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"{name} lacks the column(s) {', '.join(sorted(missing))}: pass interactions "
                "with 0-based user_index and item_index, as tailrec.data.load_movielens makes."
            )
        check_indices(frame, len(profiles), n_items)
    if use_prior:  # the prior refuses unusable profiles; find out before any training
        ProfilePrior.fit(profile_features, train, n_items)
    check = new_user_check(train, validation, seed=config.seed)
    held = np.unique(pd.concat([check.shown, check.hidden])["user_index"])
    probe_validation = validation[~validation["user_index"].isin(held)]

    probe_state = final_state = None
    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        probe_state, final_state = Path(state_dir) / "probe.pt", Path(state_dir) / "final.pt"
    model = HistoryBilinearModel(items, profiles, config)
    probe_history = train_history_model(
        model, check.train, probe_validation, profiles, device, state_path=probe_state
    )
    epochs = probe_history.best_epoch
    ease_l2 = (
        fit_ease(check.train, probe_validation, n_items, k=config.eval_k)[1] if item_item else None
    )
    prior = None
    if use_prior:
        prior = fit_profile_prior(profile_features, check.train, n_items, seed=config.seed)[0]
    probe_item_item = None if ease_l2 is None else ease_item_weights(check.train, n_items, ease_l2)
    probe = Parts(model, probe_item_item, prior)
    full = pd.concat([train, validation])
    final = _fit_parts(
        full, items, profiles, config, epochs, ease_l2, use_prior, device, final_state
    )
    # Epochs trained in all: the probe's, early stopping included, then the refit's.
    info = {"epochs": epochs, "ease_l2": ease_l2, "epochs_trained": len(probe_history.seconds)}
    info["epochs_trained"] += epochs
    return TailrecFit(
        probe, final, check, probe_validation, full, profiles, n_items, config.eval_k, info
    )


def placeholder_profiles(n_users: int, width: int) -> np.ndarray:
    """One constant unit vector per user, for data without profiles (the model needs a row each)."""
    return np.full((n_users, width), width**-0.5, dtype=np.float32)


def fit_tailrec(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    config: HistoryModelConfig | None = None,
    item_item: bool = True,
    profile_prior: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[Scorer, dict]:
    """Fit the full recommender on ``train``, choosing its settings without the test split.

    Parameters
    ----------
    train, validation : pandas.DataFrame
        Interactions (``user_index``, ``item_index``, and ``timestamp`` when
        known: it decides which items a held-out user is shown first); the
        test split is never passed.
    item_features, profile_features : numpy.ndarray
        Text-encoder features of every item and of every user's profile.
    config : HistoryModelConfig, optional
    item_item, profile_prior : bool
        Use the item-item term and the profile prior. Without the prior, a
        user with no history gets the model's item bias.
    device : torch.device or str

    Returns
    -------
    (Scorer, dict)
        The scorer, and what was chosen: ``epochs``, ``ease_l2``,
        ``item_item_weight``, ``prior_weight``, ``prior_history_weight``,
        ``trust_count`` and, with the prior, ``prior_k`` and ``prior_mix``.
    """
    parts = fit_tailrec_parts(train, validation, item_features, profile_features, config, device)
    return parts.recommender(item_item=item_item, profile_prior=profile_prior)
