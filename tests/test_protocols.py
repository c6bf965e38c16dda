"""The long-tail protocols: published split, few-shot users, and the EASE baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailrec.baselines import ease_scorer, implicit_scorer, lightfm_scorer
from tailrec.protocols import few_shot_split, published_split


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_index"], frame["item_index"], strict=True))


@pytest.mark.parametrize("n_shots", [0, 1, 3, 5])
def test_few_shot_users_keep_exactly_their_earliest_n(movielens, n_shots):
    split, held_out = few_shot_split(movielens.interactions, n_shots, seed=3)
    data = movielens.interactions
    assert set(split.test["user_index"]) == set(held_out)
    assert not split.validation["user_index"].isin(held_out).any()
    kept = split.train[split.train["user_index"].isin(held_out)]
    assert (kept.groupby("user_index").size().reindex(held_out, fill_value=0) == n_shots).all()
    # What they keep is never later than what they are tested on.
    if n_shots:
        last_kept = kept.groupby("user_index")["timestamp"].max()
        first_test = split.test.groupby("user_index")["timestamp"].min()
        assert (last_kept <= first_test.loc[last_kept.index]).all()
    # Nothing is lost or duplicated.
    union = pairs(split.train) | pairs(split.validation) | pairs(split.test)
    assert union == pairs(data)
    assert len(split.train) + len(split.validation) + len(split.test) == len(data)


def test_few_shot_draws_the_same_users_for_every_n_and_seed(movielens):
    _, first = few_shot_split(movielens.interactions, 0, seed=7)
    _, again = few_shot_split(movielens.interactions, 5, seed=7)
    _, other = few_shot_split(movielens.interactions, 0, seed=8)
    np.testing.assert_array_equal(first, again)  # every MovieLens user has > 5 ratings
    assert set(first) != set(other)
    assert len(first) == round(0.2 * movielens.n_users)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_few_shot_refuses_bad_n(movielens, bad):
    with pytest.raises(ValueError, match="n_shots"):
        few_shot_split(movielens.interactions, bad)


def test_published_split_holds_out_a_quarter_of_each_item(movielens):
    split = published_split(movielens.interactions)
    per_item = movielens.interactions.groupby("item_index").size()
    held = split.test.groupby("item_index").size().reindex(per_item.index, fill_value=0)
    expected = per_item - np.floor(0.75 * per_item + 0.5).astype(int)
    pd.testing.assert_series_equal(held, expected, check_names=False)


def test_ease_matches_its_closed_form_on_a_small_matrix():
    train = pd.DataFrame({"user_index": [0, 0, 1, 1, 2], "item_index": [0, 1, 1, 2, 0]})
    X = np.zeros((3, 3))
    X[train["user_index"], train["item_index"]] = 1
    l2 = 2.0
    # Solve each column by brute force: B_j = argmin ||X_j - X b||^2 + l2 ||b||^2 with b_j = 0.
    B = np.zeros((3, 3))
    for j in range(3):
        others = [i for i in range(3) if i != j]
        A = X[:, others]
        B[others, j] = np.linalg.solve(A.T @ A + l2 * np.eye(2), A.T @ X[:, j])
    scores = ease_scorer(train, 3, l2)(np.array([0, 1, 2]))
    np.testing.assert_allclose(scores, X @ B, atol=1e-10)


def test_ease_gives_unknown_users_zero_scores():
    train = pd.DataFrame({"user_index": [0, 1], "item_index": [0, 1]})
    assert not ease_scorer(train, 3)(np.array([5])).any()


def test_bpr_mf_learns_block_structure(block_interactions):
    from tailrec.baselines import bpr_mf_scorer, random_scorer
    from tailrec.evaluation import evaluate_ranking
    from tailrec.splits import random_user_split

    data = block_interactions()
    split = random_user_split(data, seed=0)
    n_users, n_items = int(data["user_index"].max()) + 1, int(data["item_index"].max()) + 1
    # Small batches: the toy data has only a few hundred positives per epoch.
    settings = {"dim": 8, "epochs": 30, "batch_size": 32, "lr": 0.02}
    scorer = bpr_mf_scorer(split.train, split.validation, n_users, n_items, **settings)
    seen = [split.train, split.validation]
    bpr = evaluate_ranking(scorer, split.test, seen, n_items)["ndcg"].mean()
    chance = evaluate_ranking(random_scorer(n_items, 0), split.test, seen, n_items)["ndcg"].mean()
    assert bpr > chance + 0.15
    again = bpr_mf_scorer(split.train, split.validation, n_users, n_items, **settings)
    np.testing.assert_array_equal(scorer(np.arange(3)), again(np.arange(3)))


@pytest.mark.parametrize(
    ("module", "build"),
    [
        ("lightfm", lambda train, u, i: lightfm_scorer(train, u, i, dim=8, epochs=20)),
        ("implicit", lambda train, u, i: implicit_scorer(train, u, i, "als", dim=8)),
    ],
)
def test_optional_baselines_learn_block_structure(block_interactions, module, build):
    pytest.importorskip(module)
    from tailrec.baselines import random_scorer
    from tailrec.evaluation import evaluate_ranking
    from tailrec.splits import random_user_split

    data = block_interactions()
    split = random_user_split(data, seed=0)
    n_users, n_items = int(data["user_index"].max()) + 1, int(data["item_index"].max()) + 1
    seen = [split.train, split.validation]
    scorer = build(pd.concat(seen), n_users, n_items)
    assert scorer(np.arange(3)).shape == (3, n_items)
    ndcg = evaluate_ranking(scorer, split.test, seen, n_items)["ndcg"].mean()
    chance = evaluate_ranking(random_scorer(n_items, 0), split.test, seen, n_items)["ndcg"].mean()
    assert ndcg > chance + 0.15


def test_implicit_scorer_refuses_an_unknown_algorithm(block_interactions):
    with pytest.raises(ValueError, match="'als' or 'bpr'"):
        implicit_scorer(block_interactions(), 60, 40, "sgd")


def test_a_missing_optional_baseline_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lightfm", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"tailrec\[baselines\]"):
        lightfm_scorer(pd.DataFrame({"user_index": [0], "item_index": [0]}), 1, 1)
