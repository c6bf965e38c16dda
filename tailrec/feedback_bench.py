"""The feedback benchmark: click and purchase rates round by round, with and without updates.

Two settings, each on real held-out ratings (:mod:`tailrec.feedback`):

- ``temporal``: every user's latest 25% of ratings is their future; the
  rates are reported for all users and for head, torso and tail users (by
  training activity).
- ``few_shot_N``: 20% of users keep only their ``N`` earliest ratings; the
  rest of their ratings is their future. This is the user who has just
  arrived.

The recommenders, all fitted once per setting on its training data:

- ``tailrec``: the long-tail recommender, rebuilt from the clicks after every
  round (a fold-in: nothing is retrained);
- ``tailrec_steps``: the same, with a few gradient steps on each user's own
  vector after the fold-in (:func:`tailrec.history_model.tune_user_vectors`);
- ``tailrec_no_update``: the first round's model, never updated;
- ``ease`` and ``ease_no_update``: EASE's item-item scores of the history,
  with and without the clicks folded in;
- ``popularity``: the same list for everyone, which no click can move.

It also times one update for one user on this machine: the fold-in of a
user's history and the scoring of the whole catalogue for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tailrec.baselines import ease_item_weights, fit_ease, item_item_scorer, popularity_scorer
from tailrec.checks import require_whole_number
from tailrec.data import InteractionData
from tailrec.feedback import HistoryRecommender, simulate_feedback
from tailrec.history_model import HistoryModelConfig
from tailrec.protocols import few_shot_split
from tailrec.recommender import TailrecFit, Weights, fit_tailrec_parts
from tailrec.segments import segment_users
from tailrec.splits import Split, temporal_split

USER_STEPS = 5


@dataclass
class FeedbackSetting:
    """Who is served, from what history, against which future, labelled how."""

    name: str
    split: Split
    users: np.ndarray
    groups: pd.Series  # user_index -> group label

    @property
    def history(self) -> pd.DataFrame:
        return pd.concat([self.split.train, self.split.validation], ignore_index=True)


def feedback_settings(data: InteractionData, n_shots: int, seed: int) -> list[FeedbackSetting]:
    """The temporal and the few-shot setting (see the module)."""
    split = temporal_split(data.interactions, seed=seed)
    segments = segment_users(split.train, data.n_users)
    users = np.unique(split.test["user_index"])
    settings = [FeedbackSetting("temporal", split, users, segments)]
    few, held_out = few_shot_split(data.interactions, n_shots, seed=seed)
    name = f"few_shot_{n_shots}"
    labels = pd.Series(name, index=pd.RangeIndex(data.n_users, name="user_index"))
    settings.append(FeedbackSetting(name, few, held_out, labels))
    return settings


def recommenders(
    fit: TailrecFit, weights: Weights, setting: FeedbackSetting, n_items: int
) -> dict[str, tuple[HistoryRecommender, bool]]:
    """Each recommender of the comparison, as (build from history, update between rounds)."""
    final, profiles, history = fit.final, fit.profiles, setting.history

    def tailrec(steps: int) -> HistoryRecommender:
        return lambda known: final.scorer(known, profiles, weights, user_steps=steps)

    _, l2 = fit_ease(setting.split.train, setting.split.validation, n_items)
    item_item = ease_item_weights(history, n_items, l2)
    popular = popularity_scorer(history, n_items)
    return {
        "tailrec": (tailrec(0), True),
        "tailrec_steps": (tailrec(USER_STEPS), True),
        "tailrec_no_update": (tailrec(0), False),
        "ease": (lambda known: item_item_scorer(item_item, known), True),
        "ease_no_update": (lambda known: item_item_scorer(item_item, known), False),
        "popularity": (lambda known: popular, False),
    }


def update_milliseconds(
    build: HistoryRecommender, history: pd.DataFrame, users: np.ndarray, repeats: int = 50
) -> float:
    """Median time, in ms, to fold one user's history in and score the catalogue for them."""
    times = []
    for user in users[:repeats]:
        mine = history[history["user_index"] == user][["user_index", "item_index"]]
        started = time.perf_counter()
        build(mine)(np.array([user]))
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 2)


def compare_feedback(
    data: InteractionData,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    seed: int = 42,
    rounds: int = 5,
    k: int = 10,
    n_shots: int = 3,
    max_epochs: int | None = None,
    echo: Callable[..., None] = print,
) -> tuple[pd.DataFrame, dict]:
    """Run every recommender through ``rounds`` rounds in every setting.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per setting, model, group (``all`` and the setting's groups)
        and round: ``shown``, ``ctr``, ``conversion``; and the run's facts:
        update times in ms (with and without user steps) and the settings
        chosen for each fit.
    """
    require_whole_number("rounds", rounds, minimum=1)
    require_whole_number("k", k, minimum=1)
    config = HistoryModelConfig(seed=seed).capped(max_epochs)
    rows, facts = [], {}
    for setting in feedback_settings(data, n_shots, seed):
        split = setting.split
        fit = fit_tailrec_parts(
            split.train, split.validation, item_features, profile_features, config
        )
        weights = fit.chosen()[1]
        facts[setting.name] = {"epochs": fit.info["epochs"], **asdict(weights)}
        built = recommenders(fit, weights, setting, data.n_items)
        for model, (build, update) in built.items():
            log = simulate_feedback(
                build, setting.history, split.test, setting.users, rounds, k, update
            )
            rows.append(_tidy(log.rates(), setting.name, model, group="all"))
            rows.append(_tidy(log.rates(setting.groups), setting.name, model))
            last = log.rates().iloc[-1]
            echo(
                f"{setting.name:<11} {model:<18} round {rounds} CTR {last['ctr']:.4f} "
                f"conversion {last['conversion']:.4f}",
                flush=True,
            )
        if setting.name == "temporal":
            history, users = setting.history, setting.users
            facts["update_ms"] = update_milliseconds(built["tailrec"][0], history, users)
            steps = update_milliseconds(built["tailrec_steps"][0], history, users)
            facts["update_with_steps_ms"] = steps
    columns = ["setting", "model", "group", "round", "shown", "ctr", "conversion"]
    results = pd.concat(rows, ignore_index=True)[columns]
    results = results[results["group"] != results["setting"]]  # few-shot: one group, "all"
    # Settings and models in the order run, groups from all to tail, then rounds.
    order = {"all": 0, "head": 1, "torso": 2, "tail": 3}
    results = results.assign(
        _setting=pd.factorize(results["setting"])[0],
        _model=pd.factorize(results["model"])[0],
        _group=results["group"].map(order),
    ).sort_values(["_setting", "_model", "_group", "round"], kind="stable")
    return results[columns].reset_index(drop=True), facts


def _tidy(rates: pd.DataFrame, setting: str, model: str, group: str | None = None) -> pd.DataFrame:
    frame = rates.reset_index().rename(columns={"segment": "group"})
    if group is not None:
        frame["group"] = group
    return frame.assign(setting=setting, model=model)


def update_lift(
    results: pd.DataFrame, model: str = "tailrec", base: str = "tailrec_no_update"
) -> pd.DataFrame:
    """Relative CTR and conversion of ``model`` over ``base`` per setting, group and round."""
    keys = ["setting", "group", "round"]
    a = results[results["model"] == model].set_index(keys)[["ctr", "conversion"]]
    b = results[results["model"] == base].set_index(keys)[["ctr", "conversion"]]
    return (a / b - 1).reindex(a.index).rename(columns=lambda c: f"{c}_lift")
