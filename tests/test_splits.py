"""Splits (disjoint, complete, seeded, per-group fractions) and head/torso/tail segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailrec.segments import SEGMENTS, activity_counts, segment_summary, segment_users
from tailrec.splits import SPLIT_NAMES, Split, check_disjoint, holdout_mask, make_split

KEY = ["user_index", "item_index"]


@pytest.fixture(scope="module")
def splits(movielens):
    return {name: make_split(name, movielens.interactions, seed=42) for name in SPLIT_NAMES}


def pair_set(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_index"], frame["item_index"], strict=True))


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_parts_are_disjoint_and_cover_the_input(name, splits, movielens):
    split = splits[name]
    assert split.name == name
    train, validation, test = (
        pair_set(split.train),
        pair_set(split.validation),
        pair_set(split.test),
    )
    assert not train & validation and not train & test and not validation & test
    assert train | validation | test == pair_set(movielens.interactions)
    assert sum(split.sizes().values()) == len(movielens.interactions)
    # Rows are kept whole: ratings and timestamps travel with their pair.
    rebuilt = pd.concat([split.train, split.validation, split.test])
    columns = list(movielens.interactions.columns)
    pd.testing.assert_frame_equal(
        rebuilt[columns].sort_values(KEY).reset_index(drop=True),
        movielens.interactions.sort_values(KEY).reset_index(drop=True),
    )


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_fractions_are_near_the_targets(name, splits, movielens):
    split = splits[name]
    n = len(movielens.interactions)
    assert 0.235 <= len(split.test) / n <= 0.265
    rest = len(split.train) + len(split.validation)
    assert 0.09 <= len(split.validation) / rest <= 0.11


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_every_user_keeps_training_data(name, splits, movielens):
    split = splits[name]
    assert set(split.train["user_index"]) == set(range(movielens.n_users))


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_seeds_reproduce_and_differ(name, movielens):
    small = movielens.interactions[movielens.interactions["user_index"] < 200]
    first = make_split(name, small, seed=1)
    again = make_split(name, small, seed=1)
    other = make_split(name, small, seed=2)
    for part in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(first, part), getattr(again, part))
    assert pair_set(first.test) != pair_set(other.test) or pair_set(first.validation) != pair_set(
        other.validation
    )


def test_random_user_split_differs_by_seed_in_test(movielens):
    small = movielens.interactions[movielens.interactions["user_index"] < 200]
    a = make_split("random_user", small, seed=1)
    b = make_split("random_user", small, seed=2)
    assert pair_set(a.test) != pair_set(b.test)


def test_stratified_item_holds_out_a_quarter_of_each_item(splits, movielens):
    split = splits["stratified_item"]
    size = movielens.interactions.groupby("item_index").size()
    held = split.test.groupby("item_index").size().reindex(size.index, fill_value=0)
    # Each item keeps round-half-up(0.75 * n) rows (the documented rule) and holds out the rest.
    expected_kept = np.floor(0.75 * size + 0.5).astype(int)
    pd.testing.assert_series_equal(held, size - expected_kept, check_names=False)
    # Halves round up on the kept side: 2 ratings -> both kept, 6 -> 5 kept.
    assert (held[size == 2] == 0).all() and (held[size == 6] == 1).all()


@pytest.mark.parametrize("name", ["random_user", "temporal"])
def test_user_splits_hold_out_a_quarter_of_each_user(name, splits, movielens):
    split = splits[name]
    size = movielens.interactions.groupby("user_index").size()
    held = split.test.groupby("user_index").size().reindex(size.index, fill_value=0)
    expected_kept = np.maximum(np.floor(0.75 * size + 0.5).astype(int), 1)
    pd.testing.assert_series_equal(held, size - expected_kept, check_names=False)


def test_temporal_split_never_trains_on_the_future(splits):
    split = splits["temporal"]
    train_max = split.train.groupby("user_index")["timestamp"].max()
    val_min = split.validation.groupby("user_index")["timestamp"].min()
    val_max = split.validation.groupby("user_index")["timestamp"].max()
    test_min = split.test.groupby("user_index")["timestamp"].min()
    users = test_min.index
    assert (train_max.loc[users] <= test_min).all()
    common = val_min.index
    assert (train_max.loc[common] <= val_min).all()
    assert (
        val_max.loc[common.intersection(users)] <= test_min.loc[common.intersection(users)]
    ).all()


def test_unknown_split_name():
    frame = pd.DataFrame({"user_index": [0], "item_index": [0], "timestamp": [0]})
    with pytest.raises(ValueError, match="Unknown split"):
        make_split("leave_one_out", frame)


def test_check_disjoint_raises_on_overlap():
    a = pd.DataFrame({"user_index": [0, 1], "item_index": [5, 6]})
    b = pd.DataFrame({"user_index": [2], "item_index": [5]})
    c = pd.DataFrame({"user_index": [1], "item_index": [6]})
    check_disjoint(a, b)  # no shared pair
    with pytest.raises(ValueError, match="leak"):
        check_disjoint(a, b, c)
    with pytest.raises(ValueError):
        Split(name="bad", train=a, validation=b, test=c)


def test_holdout_mask_rules():
    frame = pd.DataFrame({"user_index": [0] * 4 + [1] * 2 + [2]})
    order = np.array([3.0, 1.0, 2.0, 0.0, 5.0, 4.0, 9.0])
    mask = holdout_mask(frame, "user_index", 0.5, order)
    # Group 0 keeps 2 of 4 (the smallest keys), group 1 keeps 1 of 2, group 2 keeps 1 of 1
    # (0.5 rounds up on the kept side).
    np.testing.assert_array_equal(mask, [True, False, True, False, True, False, False])
    strict = holdout_mask(frame, "user_index", 0.9, order, min_kept=1)
    # 0.9 would keep nothing of small groups; min_kept=1 keeps the row with the smallest key.
    np.testing.assert_array_equal(strict, [True, True, True, False, True, False, False])
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            holdout_mask(frame, "user_index", bad, order)


# ---------------------------------------------------------------- segments


def test_segment_labels_follow_activity(splits, movielens):
    train = splits["temporal"].train
    segments = segment_users(train, movielens.n_users)
    assert set(segments) == set(SEGMENTS)
    assert segments.index.tolist() == list(range(movielens.n_users))
    counts = pd.Series(activity_counts(train, movielens.n_users))
    by_segment = counts.groupby(segments)
    # Tail users have the lowest counts, head users the highest, without overlap.
    assert by_segment.max()["tail"] < by_segment.min()["torso"]
    assert by_segment.max()["torso"] < by_segment.min()["head"]
    share = segments.value_counts(normalize=True)
    assert share["tail"] >= 0.25 and share["head"] <= 0.25
    summary = segment_summary(segments, train)
    assert summary.index.tolist() == list(SEGMENTS)
    assert summary["users"].sum() == movielens.n_users
    assert summary.loc["tail", "max_interactions"] == by_segment.max()["tail"]


def test_segments_by_hand_with_inactive_users():
    # Users 0..7 with 1..8 interactions; users 8 and 9 have none.
    train = pd.DataFrame({"user_index": np.repeat(np.arange(8), np.arange(1, 9))})
    segments = segment_users(train, n_users=10, tail_quantile=0.3, head_quantile=0.7)
    counts = activity_counts(train, 10)
    tail_limit, head_limit = np.quantile(counts, [0.3, 0.7])
    expected = np.where(
        counts <= tail_limit, "tail", np.where(counts > head_limit, "head", "torso")
    )
    assert segments.tolist() == expected.tolist()
    assert segments[8] == "tail" and segments[9] == "tail"
    assert segments[7] == "head"


@pytest.mark.parametrize(
    "tail, head", [(0.0, 0.75), (0.25, 1.0), (0.5, 0.5), (0.8, 0.2), (-1, 0.5)]
)
def test_segment_quantiles_are_validated(tail, head):
    train = pd.DataFrame({"user_index": [0, 1, 1]})
    with pytest.raises(ValueError, match="quantile"):
        segment_users(train, 2, tail_quantile=tail, head_quantile=head)
