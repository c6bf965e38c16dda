"""The profile prior, the history gate and the held-out new users of the full recommender."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailrec.profile_prior import ProfilePrior, fit_profile_prior
from tailrec.recommender import blend_scorers, new_user_check, trust_by_history


def constant(value: float, n_items: int = 4):
    return lambda users: np.full((len(users), n_items), value)


def test_blend_adds_weighted_scores_and_skips_zero_weights():
    blended = blend_scorers((1.0, constant(2.0)), (3.0, constant(1.0)), (0.0, None))
    np.testing.assert_array_equal(blended(np.array([0, 1])), np.full((2, 4), 5.0))
    with pytest.raises(ValueError, match="non-zero weight"):
        blend_scorers((0.0, constant(1.0)))


def test_the_gate_trusts_history_as_it_grows():
    history = pd.DataFrame({"user_index": [1, 2, 2, 2, 2], "item_index": [0, 0, 1, 2, 3]})
    gate = trust_by_history(constant(1.0), constant(0.0), history, trust_count=2.0)
    # No history: cold only; 1 item: 1/(1+4); 4 items: 16/(16+4).
    np.testing.assert_allclose(gate(np.array([0, 1, 2, 7]))[:, 0], [0.0, 0.2, 0.8, 0.0])
    full_trust = trust_by_history(constant(1.0), constant(0.0), history, trust_count=0.0)
    np.testing.assert_allclose(full_trust(np.array([0, 1, 2]))[:, 0], [0.0, 1.0, 1.0])
    never = trust_by_history(constant(1.0), constant(0.0), history, trust_count=np.inf)
    np.testing.assert_allclose(never(np.array([0, 1, 2]))[:, 0], [0.0, 0.0, 0.0])
    nobody = trust_by_history(constant(1.0), constant(0.0), history.iloc[:0], trust_count=2.0)
    np.testing.assert_allclose(nobody(np.array([0, 3]))[:, 0], [0.0, 0.0])


def test_new_user_check_holds_out_whole_users_with_their_earliest_items_shown():
    rows = [(u, i, 100 * u + (7 * i) % 13) for u in range(40) for i in range(12)]
    train = pd.DataFrame(rows, columns=["user_index", "item_index", "timestamp"])
    later = [10_000, 10_000]  # after every training interaction, as in a real split
    validation = pd.DataFrame({"user_index": [0, 1], "item_index": [20, 21], "timestamp": later})
    check = new_user_check(train, validation, shots=(0, 1, 3), fraction=0.25, seed=0)
    held = np.unique(pd.concat([check.shown, check.hidden])["user_index"])
    assert len(held) == 10
    assert not set(held) & set(check.train["user_index"])
    shown = check.shown.groupby("user_index").size().reindex(held, fill_value=0)
    assert sorted(shown.value_counts().index) == [0, 1, 3]
    for user, group in check.shown.groupby("user_index"):
        rest = check.hidden[check.hidden["user_index"] == user]
        assert group["timestamp"].max() <= rest["timestamp"].min()
    assert len(check.train) + len(check.shown) + len(check.hidden) == len(train) + sum(
        validation["user_index"].isin(held)
    )


@pytest.fixture
def two_tribes():
    """Users 0-9 like items 0-2, users 10-19 like items 3-5; profiles say which tribe."""
    rng = np.random.default_rng(0)
    profiles = np.vstack([np.tile([1.0, 0.1], (10, 1)), np.tile([0.1, 1.0], (10, 1))])
    profiles += rng.normal(0, 0.01, profiles.shape)
    rows = [(u, i) for u in range(10) for i in (0, 1, 2)] + [
        (u, i) for u in range(10, 20) for i in (3, 4, 5)
    ]
    rows += [(0, 5)]  # item 5 is the most popular overall
    return profiles, pd.DataFrame(rows, columns=["user_index", "item_index"])


def test_the_prior_ranks_the_items_of_similar_profiles_first(two_tribes):
    profiles, interactions = two_tribes
    prior = ProfilePrior.fit(profiles, interactions, n_items=6, k=5, mix=1.0)
    scores = prior.log_probabilities(np.array([3, 15]))
    assert set(np.argsort(-scores[0])[:3]) == {0, 1, 2}
    assert set(np.argsort(-scores[1])[:3]) == {3, 4, 5}
    # mix = 0 is plain popularity, the same for every profile.
    flat = ProfilePrior.fit(profiles, interactions, n_items=6, k=5, mix=0.0)
    scores = flat.log_probabilities(np.array([3, 15]))
    np.testing.assert_allclose(scores[0], scores[1])
    assert scores[0].argmax() == 5


def test_leaving_a_user_out_of_their_own_neighbours(two_tribes):
    profiles, interactions = two_tribes
    prior = ProfilePrior.fit(profiles, interactions, n_items=6, k=1, mix=1.0)
    with_self = prior.log_probabilities(np.array([0]))[0]
    without_self = prior.log_probabilities(np.array([0]), leave_self_out=True)[0]
    assert with_self[5] > without_self[5]  # only user 0 rated item 5 in tribe one


def test_fit_profile_prior_keeps_the_best_of_its_grid(two_tribes):
    from tailrec.evaluation import evaluate_ranking
    from tailrec.profile_prior import MIX_GRID

    profiles, interactions = two_tribes
    prior, ndcg = fit_profile_prior(profiles, interactions, n_items=6, sample_users=20)
    assert prior.mix in MIX_GRID
    scores = []
    for mix in MIX_GRID:
        candidate = ProfilePrior.fit(profiles, interactions, n_items=6, k=prior.k, mix=mix)
        per_user = evaluate_ranking(candidate.scorer(leave_self_out=True), interactions, [], 6, 6)
        scores.append(per_user["ndcg"].mean())
    assert ndcg == pytest.approx(max(scores))


@pytest.mark.parametrize(
    ("profiles", "message"),
    [(np.zeros((20, 2)), "non-zero"), (np.full((20, 2), np.nan), "finite")],
)
def test_the_prior_refuses_unusable_profiles(two_tribes, profiles, message):
    _, interactions = two_tribes
    with pytest.raises(ValueError, match=message):
        ProfilePrior.fit(profiles, interactions, n_items=6)


def test_the_prior_checks_its_settings(two_tribes):
    profiles, interactions = two_tribes
    with pytest.raises(ValueError, match="mix"):
        ProfilePrior.fit(profiles, interactions, n_items=6, mix=1.5)


def test_history_moves_the_prior_towards_users_who_rated_the_same_items(two_tribes):
    profiles, interactions = two_tribes
    prior = ProfilePrior.fit(profiles, interactions, n_items=6, k=5, mix=1.0)
    # User 3 has a tribe-one profile but has rated item 4, a tribe-two film.
    history = pd.DataFrame({"user_index": [3], "item_index": [4]})
    by_profile = prior.scorer()(np.array([3]))[0]
    by_both = prior.scorer(history=history, history_weight=4.0)(np.array([3]))[0]
    assert set(np.argsort(-by_profile)[:3]) == {0, 1, 2}
    assert set(np.argsort(-by_both)[:3]) == {3, 4, 5}


def test_item_item_scores_come_from_the_given_history():
    from tailrec.baselines import ease_item_weights, ease_scorer, item_item_scorer

    train = pd.DataFrame({"user_index": [0, 0, 1, 1, 2], "item_index": [0, 1, 1, 2, 0]})
    B = ease_item_weights(train, 3, l2=1.0)
    np.testing.assert_allclose(
        item_item_scorer(B, train)(np.array([0, 1, 2])), ease_scorer(train, 3, 1.0)(np.arange(3))
    )
    newcomer = pd.DataFrame({"user_index": [7], "item_index": [2]})
    scores = item_item_scorer(B, newcomer)(np.array([7, 0]))
    np.testing.assert_allclose(scores[0], B[2])
    assert not scores[1].any()  # user 0 is not in this history


def test_score_memo_reuses_scores_within_its_budget():
    from tailrec.recommender import ScoreMemo

    calls = []

    def build():
        def score(users):
            calls.append(tuple(users))
            return np.outer(users, np.ones(3))

        return score

    users = np.array([1, 2])
    memo = ScoreMemo(budget_bytes=48)  # room for one (2, 3) float64 block
    scorer = memo.wrap(("part",), build)
    first = scorer(users)
    again = memo.wrap(("part",), build)(users)  # same key: same scorer, same scores
    assert again is first and calls == [(1, 2)]
    assert not first.flags.writeable  # shared, so nobody may change it in place
    scorer(np.array([3, 4]))  # over the budget: computed, not kept
    scorer(np.array([3, 4]))
    assert calls == [(1, 2), (3, 4), (3, 4)]
    np.testing.assert_array_equal(memo.wrap(("other",), build)(users), first)
    assert len(calls) == 4  # another key is another part
