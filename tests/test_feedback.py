"""The feedback simulator: clicks only from the real future, no repeats, and fold-in updates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tailrec.baselines import item_item_scorer, popularity_scorer
from tailrec.feedback import simulate_feedback

N_ITEMS = 8
# Items 0-3 go together, and so do items 4-7.
BLOCKS = np.kron(np.eye(2), np.ones((4, 4))) - np.eye(N_ITEMS)


# With no history the list is 0, 4, 5, 6, 7, 1, 2, 3: mostly the second block.
NO_HISTORY_ORDER = np.array([8, 3, 2, 1, 7, 6, 5, 4]) / 100


def block_recommender(history: pd.DataFrame):
    """Scores from the items a user has (their block first), else ``NO_HISTORY_ORDER``."""
    by_history = item_item_scorer(BLOCKS, history)
    return lambda users: by_history(users) + NO_HISTORY_ORDER


def frame(pairs, **columns) -> pd.DataFrame:
    data = pd.DataFrame(pairs, columns=["user_index", "item_index"])
    return data.assign(**columns)


def test_a_click_is_an_item_the_user_really_rated_later():
    future = frame([(0, 0), (0, 5), (0, 2)], rating=[5, 2, 4])
    log = simulate_feedback(block_recommender, frame([]), future, np.array([0]), rounds=1, k=4)
    shown = log.shown.set_index("item_index")
    assert list(shown.index) == [0, 4, 5, 6]
    assert shown["clicked"].to_dict() == {0: True, 4: False, 5: True, 6: False}
    assert shown["purchased"].to_dict() == {0: True, 4: False, 5: False, 6: False}


def test_nothing_is_shown_twice_or_from_the_history():
    history = frame([(0, 0)])
    log = simulate_feedback(
        block_recommender, history, frame([], rating=[]), np.array([0]), rounds=3, k=2
    )
    assert not log.shown.duplicated(["user_index", "item_index"]).any()
    assert 0 not in set(log.shown["item_index"])
    assert len(log.shown) == 6


def test_the_update_moves_a_list_towards_the_clicked_items():
    # Round 1 shows items 0 and 4, and the user really rated item 0.
    future = frame([(0, 0)], rating=[4])
    runs = {
        update: simulate_feedback(
            block_recommender, frame([]), future, np.array([0]), rounds=2, k=2, update=update
        ).shown
        for update in (True, False)
    }
    for shown in runs.values():
        assert shown.query("round == 1")["item_index"].tolist() == [0, 4]
    # With the click folded in, round 2 turns to item 0's block; without, it does not.
    assert set(runs[True].query("round == 2")["item_index"]) <= {1, 2, 3}
    assert runs[False].query("round == 2")["item_index"].tolist() == [5, 6]


def test_one_users_clicks_do_not_change_another_users_list():
    future = frame([(0, 1), (0, 2), (0, 3), (1, 6)], rating=[5, 5, 5, 5])
    both = simulate_feedback(
        block_recommender, frame([(1, 4)]), future, np.array([0, 1]), rounds=3, k=2
    )
    alone = simulate_feedback(
        block_recommender, frame([(1, 4)]), future, np.array([1]), rounds=3, k=2
    )
    pd.testing.assert_frame_equal(
        both.shown.query("user_index == 1").reset_index(drop=True),
        alone.shown.reset_index(drop=True),
    )


def test_rates_per_round_and_segment():
    future = frame([(0, 0), (1, 1)], rating=[5, 3])
    log = simulate_feedback(
        lambda h: popularity_scorer(frame([(2, 0), (2, 1)]), N_ITEMS),
        frame([]),
        future,
        np.array([0, 1]),
        rounds=2,
        k=2,
    )
    rates = log.rates()
    assert rates.loc[1, "ctr"] == pytest.approx(2 / 4)
    assert rates.loc[1, "conversion"] == pytest.approx(1 / 4)
    assert rates.loc[2, "ctr"] == 0.0
    by_segment = log.rates(pd.Series(["tail", "head"]))
    assert by_segment.loc[(1, "tail"), "conversion"] == pytest.approx(1 / 2)
    assert by_segment.loc[(1, "head"), "conversion"] == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"rounds": 0}, "rounds"), ({"k": -1}, "k"), ({"future": frame([(0, 1)])}, "rating")],
)
def test_bad_requests_are_refused(changes, message):
    arguments = {
        "recommender": block_recommender,
        "history": frame([]),
        "future": frame([(0, 1)], rating=[5]),
        "users": np.array([0]),
    } | changes
    with pytest.raises(ValueError, match=message):
        simulate_feedback(**arguments)
