"""Metrics against slow reference implementations and hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tailrec.baselines import popularity_scorer, random_scorer
from tailrec.evaluation import (
    evaluate_classification,
    evaluate_ranking,
    pair_scores,
    sample_negative_pairs,
    summarize_by_segment,
    tie_break_keys,
    top_k_items,
)
from tailrec.metrics import (
    RANKING_METRICS,
    best_threshold,
    classification_metrics,
    gini,
    lorenz_curve,
    ranking_metrics,
    roc_auc,
)

# ---------------------------------------------------------------- reference code


def slow_ranking_metrics(users, top_items, relevant):
    """One user at a time, straight from the textbook definitions."""
    rows = []
    for user, items in zip(users, top_items, strict=True):
        rel = set(relevant.loc[relevant["user_index"] == user, "item_index"])
        if not rel:
            continue
        k = len(items)
        hits = [int(item) in rel for item in items]
        n_hits = sum(hits)
        precision = n_hits / k
        recall = n_hits / len(rel)
        f1 = 2 * precision * recall / (precision + recall) if n_hits else 0.0
        dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1) if hit)
        idcg = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(rel), k) + 1))
        ap = 0.0
        for rank in range(1, k + 1):
            if hits[rank - 1]:
                ap += sum(hits[:rank]) / rank
        ap /= min(len(rel), k)
        rows.append(
            {
                "user_index": int(user),
                "n_relevant": len(rel),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "ndcg": dcg / idcg,
                "map": ap,
                "hit_rate": float(n_hits > 0),
            }
        )
    return pd.DataFrame(rows)


def random_ranking_case(seed: int, k: int, n_users: int = 40, n_items: int = 30):
    rng = np.random.default_rng(seed)
    # Some users in the list have no relevant items; some relevant users are not in the list.
    users = np.sort(rng.choice(n_users + 10, size=n_users, replace=False)).astype(np.int64)
    top_items = np.stack([rng.choice(n_items, size=k, replace=False) for _ in users])
    pairs = set()
    for user in range(n_users + 10):
        if rng.random() < 0.2:
            continue  # no relevant item at all
        for item in rng.choice(n_items, size=rng.integers(1, 12), replace=False):
            pairs.add((user, int(item)))
    relevant = pd.DataFrame(sorted(pairs), columns=["user_index", "item_index"])
    return users, top_items.astype(np.int64), relevant, n_items


def brute_force_auc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def accuracy_at(pos, neg, threshold):
    return ((pos > threshold).sum() + (neg <= threshold).sum()) / (len(pos) + len(neg))


def cut_thresholds(pos, neg):
    """Every distinct decision: below all scores, between neighbours, above all scores."""
    values = np.unique(np.concatenate([pos, neg]))
    return np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1] + 1]])


# ---------------------------------------------------------------- ranking metrics


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_ranking_metrics_match_slow_loop(seed, k):
    users, top_items, relevant, n_items = random_ranking_case(seed, k)
    fast = ranking_metrics(users, top_items, relevant, n_items).reset_index(drop=True)
    slow = slow_ranking_metrics(users, top_items, relevant)
    assert len(slow) > 0 and len(slow) < len(users)  # the case really has users without items
    assert fast["user_index"].tolist() == slow["user_index"].tolist()
    assert fast["n_relevant"].tolist() == slow["n_relevant"].tolist()
    for metric in RANKING_METRICS:
        np.testing.assert_allclose(fast[metric], slow[metric], rtol=1e-12, atol=1e-12)


def test_ranking_metrics_worked_example():
    # User 0: list of 3, hits at ranks 1 and 3, 2 relevant items (4 and 9).
    # User 1: list of 3, one hit at rank 2, 5 relevant items.
    # User 2: relevant items but no hit. User 3: nothing relevant -> no row.
    users = np.array([0, 1, 2, 3])
    top_items = np.array([[4, 5, 9], [7, 1, 8], [0, 2, 3], [4, 5, 6]])
    relevant = pd.DataFrame(
        {
            "user_index": [0, 0, 1, 1, 1, 1, 1, 2],
            "item_index": [4, 9, 1, 10, 11, 12, 13, 7],
        }
    )
    table = ranking_metrics(users, top_items, relevant, n_items=14).set_index("user_index")
    assert table.index.tolist() == [0, 1, 2]

    u0 = table.loc[0]
    assert u0["n_relevant"] == 2
    assert u0["precision"] == pytest.approx(2 / 3)
    assert u0["recall"] == pytest.approx(1.0)
    assert u0["f1"] == pytest.approx(0.8)
    assert u0["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert u0["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert u0["hit_rate"] == 1.0

    u1 = table.loc[1]
    assert u1["precision"] == pytest.approx(1 / 3)
    assert u1["recall"] == pytest.approx(1 / 5)
    assert u1["f1"] == pytest.approx(2 * (1 / 3) * (1 / 5) / (1 / 3 + 1 / 5))
    # Ideal list: 3 hits (min(5, k)); the one hit sits at rank 2.
    assert u1["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / 2))
    assert u1["map"] == pytest.approx((1 / 2) / 3)

    u2 = table.loc[2]
    assert (u2[list(RANKING_METRICS)] == 0).all()


def test_perfect_list_scores_one():
    users = np.array([0, 1])
    top_items = np.array([[3, 1, 2], [5, 6, 0]])
    relevant = pd.DataFrame(
        {"user_index": [0, 0, 0, 1, 1, 1, 1], "item_index": [1, 2, 3, 5, 6, 0, 9]}
    )
    table = ranking_metrics(users, top_items, relevant, n_items=10)
    np.testing.assert_allclose(table["ndcg"], 1.0)
    np.testing.assert_allclose(table["map"], 1.0)
    np.testing.assert_allclose(table["precision"], 1.0)
    np.testing.assert_allclose(table["recall"], [1.0, 3 / 4])


def test_users_without_relevant_items_are_left_out():
    users = np.array([0, 1, 2])
    top_items = np.array([[0, 1], [0, 1], [0, 1]])
    relevant = pd.DataFrame({"user_index": [1], "item_index": [1]})
    table = ranking_metrics(users, top_items, relevant, n_items=5)
    assert table["user_index"].tolist() == [1]
    empty = ranking_metrics(users, top_items, relevant.iloc[:0], n_items=5)
    assert len(empty) == 0


# ---------------------------------------------------------------- AUC and thresholds


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    # Small integer scores, so that ties between and within classes are common.
    pos = rng.integers(0, 6, size=rng.integers(1, 25)).astype(float)
    neg = rng.integers(0, 5, size=rng.integers(1, 25)).astype(float)
    assert roc_auc(pos, neg) == pytest.approx(brute_force_auc(pos, neg), abs=1e-12)


def test_roc_auc_extremes_and_errors():
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5
    with pytest.raises(ValueError):
        roc_auc(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError):
        roc_auc(np.array([1.0]), np.array([]))


def test_best_threshold_maximises_accuracy_over_all_thresholds():
    failures = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        pos = rng.normal(0.3, 1.0, size=rng.integers(1, 8))
        neg = rng.normal(0.0, 1.0, size=rng.integers(1, 8))
        best = max(accuracy_at(pos, neg, t) for t in cut_thresholds(pos, neg))
        if accuracy_at(pos, neg, best_threshold(pos, neg)) < best - 1e-12:
            failures.append(seed)
    assert failures == []


def test_best_threshold_can_reject_everything():
    pos, neg = np.array([0.0]), np.array([1.0, 2.0])
    assert accuracy_at(pos, neg, best_threshold(pos, neg)) == pytest.approx(2 / 3)


def test_best_threshold_separates_separable_scores():
    pos, neg = np.array([5.0, 6.0, 9.0]), np.array([1.0, 2.0, 4.0])
    assert best_threshold(pos, neg) == pytest.approx(4.5)
    assert classification_metrics(pos, neg, 4.5)["accuracy"] == 1.0


def test_classification_metrics_by_hand():
    pos = np.array([0.9, 0.4, 0.6])
    neg = np.array([0.1, 0.5, 0.7, 0.2])
    result = classification_metrics(pos, neg, threshold=0.55)
    # TP = 2 (0.9, 0.6), FN = 1, FP = 1 (0.7), TN = 3.
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    # Positive beats negative in 4 + 2 + 3 of the 12 pairs.
    assert result["auc"] == pytest.approx(9 / 12)
    # A score equal to the threshold is predicted negative.
    at_score = classification_metrics(pos, neg, threshold=0.6)
    assert at_score["recall"] == pytest.approx(1 / 3)
    # Nothing predicted positive: precision and F1 are 0, not NaN.
    nothing = classification_metrics(pos, neg, threshold=10.0)
    assert nothing["precision"] == 0.0 and nothing["f1"] == 0.0
    assert nothing["accuracy"] == pytest.approx(4 / 7)


# ---------------------------------------------------------------- inequality


def test_gini_known_values():
    assert gini(np.full(7, 3.0)) == pytest.approx(0.0, abs=1e-12)
    for n in (2, 5, 10):
        one_holder = np.zeros(n)
        one_holder[n // 2] = 4.0
        assert gini(one_holder) == pytest.approx((n - 1) / n)
    assert gini(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / 9)
    with pytest.raises(ValueError):
        gini(np.zeros(4))
    with pytest.raises(ValueError):
        gini(np.array([]))


@pytest.mark.parametrize("seed", range(4))
def test_gini_matches_mean_absolute_difference_and_lorenz_area(seed):
    values = np.random.default_rng(seed).exponential(size=25)
    n = len(values)
    mean_abs_diff = np.abs(values[:, None] - values[None, :]).sum() / (n * n)
    expected = mean_abs_diff / (2 * values.mean())
    assert gini(values) == pytest.approx(expected, rel=1e-12)
    assert gini(values[::-1]) == pytest.approx(expected, rel=1e-12)
    population, share = lorenz_curve(values)
    area = np.sum(np.diff(population) * (share[1:] + share[:-1]) / 2)
    assert gini(values) == pytest.approx(1 - 2 * area, rel=1e-9)


def test_lorenz_curve_shape_and_endpoints():
    population, share = lorenz_curve(np.array([5.0, 0.0, 1.0, 2.0]))
    assert population.shape == share.shape == (5,)
    assert (population[0], share[0]) == (0.0, 0.0)
    assert population[-1] == pytest.approx(1.0) and share[-1] == pytest.approx(1.0)
    assert np.all(np.diff(share) >= 0)
    assert np.all(share <= population + 1e-12)  # the poorest hold at most their share
    np.testing.assert_allclose(share, [0, 0, 1 / 8, 3 / 8, 1])
    equal_population, equal_share = lorenz_curve(np.ones(4))
    np.testing.assert_allclose(equal_share, equal_population)


# ---------------------------------------------------------------- top-k lists


def slow_top_k(scores, users, k, seen):
    seen_pairs = set(zip(seen["user_index"], seen["item_index"], strict=True))
    out = []
    for user in users:
        row = scores[user]
        candidates = [j for j in range(len(row)) if (user, j) not in seen_pairs]
        candidates.sort(
            key=lambda j: (-row[j], int(tie_break_keys(np.array([user]), np.array([j]))[0]))
        )
        out.append(candidates[:k])
    return np.array(out)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1024])
def test_top_k_items_matches_slow_sort_and_excludes_seen(chunk_size):
    rng = np.random.default_rng(5)
    n_users, n_items, k = 20, 50, 6
    scores = rng.random((n_users, n_items))

    def scorer(batch):
        return scores[batch]

    train = pd.DataFrame(
        {"user_index": rng.integers(0, n_users, 300), "item_index": rng.integers(0, n_items, 300)}
    )
    validation = pd.DataFrame({"user_index": [2, 2, 9], "item_index": [0, 1, 2]})
    users = np.array([9, 0, 2, 15, 4, 7, 19, 11, 3])  # unsorted, more users than a chunk
    got = top_k_items(scorer, users, k, [train, validation], chunk_size=chunk_size)
    assert got.shape == (len(users), k)
    assert np.issubdtype(got.dtype, np.integer)
    expected = slow_top_k(scores, users, k, pd.concat([train, validation]))
    np.testing.assert_array_equal(got, expected)
    both = pd.concat([train, validation])
    seen = set(zip(both["user_index"], both["item_index"], strict=True))
    for user, row in zip(users, got, strict=True):
        assert not any((user, item) in seen for item in row)
        assert np.all(np.diff(scores[user, row]) <= 0)  # best first
        assert len(set(row)) == k


def test_top_k_items_same_result_for_every_chunk_size():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, size=(13, 25)).astype(float)  # many ties

    def scorer(batch):
        return scores[batch]

    seen = pd.DataFrame(
        {"user_index": rng.integers(0, 13, 60), "item_index": rng.integers(0, 25, 60)}
    )
    users = np.arange(13)
    reference = top_k_items(scorer, users, 5, [seen], chunk_size=13)
    for chunk_size in (1, 2, 5):
        np.testing.assert_array_equal(
            top_k_items(scorer, users, 5, [seen], chunk_size=chunk_size), reference
        )


def test_top_k_items_orders_ties_by_the_pair_hash_not_by_item_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]])
    got = top_k_items(lambda batch: scores[batch], np.array([0]), 4)
    tied = np.array([1, 2, 4])
    expected = tied[np.argsort(tie_break_keys(np.zeros(3, dtype=np.int64), tied))]
    np.testing.assert_array_equal(got, [[*expected, 5]])


def test_all_tied_scores_do_not_favour_low_item_ids():
    n_users, n_items, k = 400, 100, 10
    got = top_k_items(lambda batch: np.zeros((len(batch), n_items)), np.arange(n_users), k)
    # Under a fair rule each item is picked about n_users * k / n_items = 40 times.
    picks = np.bincount(got.ravel(), minlength=n_items)
    assert picks[:10].sum() < 3 * 40 * 10 / 2
    assert (picks > 0).sum() > 90


def test_top_k_items_breaks_ties_at_the_cut_by_the_pair_hash():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(5, 200)).astype(float)
    got = top_k_items(lambda batch: scores[batch], np.arange(5), 7)
    nothing_seen = pd.DataFrame({"user_index": [], "item_index": []}, dtype=np.int64)
    np.testing.assert_array_equal(got, slow_top_k(scores, np.arange(5), 7, nothing_seen))


def test_top_k_items_rejects_k_larger_than_catalogue():
    with pytest.raises(ValueError, match="at most the number of items, 4"):
        top_k_items(lambda batch: np.zeros((len(batch), 4)), np.array([0]), 5)


# ---------------------------------------------------------------- evaluation helpers


def test_evaluate_ranking_of_an_oracle_is_perfect():
    n_items = 12
    relevant = pd.DataFrame({"user_index": [0, 0, 1, 3], "item_index": [2, 7, 4, 11]})
    train = pd.DataFrame({"user_index": [0, 1, 3], "item_index": [1, 1, 1]})
    oracle_scores = np.zeros((4, n_items))
    oracle_scores[relevant["user_index"], relevant["item_index"]] = 1.0
    oracle_scores[:, 1] = 5.0  # the seen item scores highest and must be skipped
    per_user = evaluate_ranking(lambda b: oracle_scores[b], relevant, [train], n_items, k=2)
    assert per_user["user_index"].tolist() == [0, 1, 3]
    np.testing.assert_allclose(per_user["ndcg"], 1.0)
    np.testing.assert_allclose(per_user["hit_rate"], 1.0)


def test_summarize_by_segment_averages_each_group():
    per_user = pd.DataFrame(
        {"user_index": [0, 1, 2, 3], "ndcg": [1.0, 0.0, 0.5, 0.25], "recall": [1.0, 1.0, 0, 0]}
    )
    segments = pd.Series(["tail", "head", "tail", "torso"], index=pd.RangeIndex(4))
    table = summarize_by_segment(per_user, segments)
    assert table.index.tolist() == ["all", "head", "torso", "tail"]
    assert table.loc["all", "ndcg"] == pytest.approx(1.75 / 4)
    assert table.loc["tail", "ndcg"] == pytest.approx(0.75)
    assert table.loc["tail", "users"] == 2
    assert table.loc["head", "recall"] == 1.0


def test_sample_negative_pairs_never_hits_a_known_pair():
    rng = np.random.default_rng(1)
    n_items = 15
    known = pd.DataFrame(
        {"user_index": rng.integers(0, 10, 100), "item_index": rng.integers(0, n_items, 100)}
    ).drop_duplicates()
    positives = known.sample(40, random_state=0)
    negatives = sample_negative_pairs(positives, [known], n_items, seed=3)
    assert negatives["user_index"].tolist() == positives["user_index"].tolist()
    known_pairs = set(zip(known["user_index"], known["item_index"], strict=True))
    assert not any(
        pair in known_pairs
        for pair in zip(negatives["user_index"], negatives["item_index"], strict=True)
    )
    again = sample_negative_pairs(positives, [known], n_items, seed=3)
    pd.testing.assert_frame_equal(negatives, again)


def test_pair_scores_reads_the_right_cells_across_chunks():
    scores = np.arange(8 * 6, dtype=float).reshape(8, 6)
    pairs = pd.DataFrame({"user_index": [7, 0, 3, 3, 5, 0], "item_index": [5, 0, 2, 4, 1, 3]})
    got = pair_scores(lambda batch: scores[batch], pairs, chunk_size=2)
    np.testing.assert_array_equal(got, scores[pairs["user_index"], pairs["item_index"]])


def test_evaluate_classification_uses_the_validation_threshold():
    rng = np.random.default_rng(2)
    n_items = 30
    validation = pd.DataFrame({"user_index": np.arange(10), "item_index": rng.integers(0, 10, 10)})
    test = pd.DataFrame({"user_index": np.arange(10), "item_index": rng.integers(0, 10, 10)})
    # Items 0..9 score high, the rest low: a perfect separator for pairs on items 0..9.
    scores = np.tile(np.r_[np.ones(10), np.zeros(20)], (10, 1))
    known = [
        validation,
        test,
        pd.DataFrame(
            {"user_index": np.arange(10).repeat(10), "item_index": np.tile(np.arange(10), 10)}
        ),
    ]
    table = evaluate_classification(lambda b: scores[b], validation, test, known, n_items, seed=0)
    assert table.index.tolist() == ["validation", "test"]
    assert table.loc["test", "accuracy"] == 1.0
    assert table.loc["test", "auc"] == 1.0
    assert table["threshold"].nunique() == 1
    assert 0.0 < table.loc["test", "threshold"] < 1.0


# ---------------------------------------------------------------- baselines


def test_popularity_scorer_counts_training_interactions():
    train = pd.DataFrame({"user_index": [0, 1, 2, 0], "item_index": [3, 3, 1, 1]})
    scores = popularity_scorer(train, n_items=5)(np.array([0, 4]))
    np.testing.assert_array_equal(scores, [[0, 2, 0, 2, 0], [0, 2, 0, 2, 0]])


def test_random_scorer_is_per_user_and_independent_of_the_batch():
    scorer = random_scorer(n_items=9, seed=4)
    together = scorer(np.array([3, 5, 8]))
    np.testing.assert_array_equal(together[1], scorer(np.array([5]))[0])
    assert not np.allclose(together[0], together[2])
    assert not np.allclose(together, random_scorer(n_items=9, seed=5)(np.array([3, 5, 8])))


def test_duplicated_held_out_rows_count_once():
    users, top_items = np.array([0]), np.array([[1, 2]])
    once = pd.DataFrame({"user_index": [0, 0], "item_index": [1, 5]})
    twice = pd.concat([once, once.iloc[:1]])
    pd.testing.assert_frame_equal(
        ranking_metrics(users, top_items, once, 10), ranking_metrics(users, top_items, twice, 10)
    )


def test_negatives_cannot_be_drawn_for_a_user_who_saw_everything():
    seen_all = pd.DataFrame({"user_index": [0, 0, 0], "item_index": [0, 1, 2]})
    with pytest.raises(ValueError, match="every item"):
        sample_negative_pairs(seen_all, [seen_all], n_items=3, seed=0)
