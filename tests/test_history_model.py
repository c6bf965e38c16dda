"""The history model: users from profile and history, its training, and the item-item blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tailrec.baselines import popularity_scorer
from tailrec.data import subsample_users
from tailrec.evaluation import evaluate_ranking
from tailrec.history_model import (
    HistoryBilinearModel,
    HistoryModelConfig,
    history_scorer,
    train_history_model,
)
from tailrec.recommender import fit_tailrec
from tailrec.splits import random_user_split
from tailrec.text import item_texts, profile_texts

N_ITEMS, WIDTH = 12, 8


def toy_model(**changes) -> HistoryBilinearModel:
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(N_ITEMS, WIDTH, generator=generator)
    profiles = torch.randn(5, WIDTH, generator=generator)
    return HistoryBilinearModel(items, profiles, HistoryModelConfig(dim=6, **changes))


def toy_history() -> pd.DataFrame:
    pairs = [(0, 1), (0, 2), (1, 3), (2, 1), (2, 4), (2, 5), (3, 6), (4, 7)]
    return pd.DataFrame(pairs, columns=["user_index", "item_index"])


@pytest.mark.parametrize(
    "changes",
    [{"input_dropout": 1.0}, {"profile_only_rate": -0.1}, {"dim": 0}, {"ssl_temperature": 0.0}],
)
def test_config_refuses_values_out_of_range(changes):
    with pytest.raises(ValueError, match="HistoryModelConfig"):
        HistoryModelConfig(**changes)


def test_features_must_share_a_width_and_be_finite():
    with pytest.raises(ValueError, match="same width"):
        HistoryBilinearModel(torch.zeros(3, 4), torch.zeros(2, 5))
    bad = torch.zeros(3, 4)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        HistoryBilinearModel(bad, torch.zeros(2, 4))


def test_a_user_with_no_history_and_an_average_profile_gets_the_item_bias():
    model = toy_model(use_profile=True)
    with torch.no_grad():
        model.item_bias.copy_(torch.arange(N_ITEMS, dtype=torch.float32))
        model.profile_up.normal_()
        scores = model(torch.zeros(1, N_ITEMS), model.profile_mean[None])
    torch.testing.assert_close(scores[0], model.item_bias.detach())


def test_a_new_user_is_scored_from_history_without_retraining():
    model = toy_model()
    profiles = torch.randn(5, WIDTH)
    before = history_scorer(model, toy_history(), profiles)(np.array([4]))
    # User 4 rates two more items: their scores change, other users' do not.
    more = pd.concat([toy_history(), pd.DataFrame({"user_index": [4, 4], "item_index": [1, 9]})])
    after = history_scorer(model, more, profiles)(np.array([4, 0]))
    assert not np.allclose(before[0], after[0])
    np.testing.assert_allclose(
        after[1], history_scorer(model, toy_history(), profiles)(np.array([0]))[0]
    )


def test_a_users_scores_do_not_depend_on_the_batch():
    model = toy_model()
    scorer = history_scorer(model, toy_history(), torch.randn(5, WIDTH))
    together = scorer(np.array([0, 1, 2, 3, 4]))
    alone = np.concatenate([scorer(np.array([u])) for u in range(5)])
    np.testing.assert_allclose(together, alone, rtol=1e-6, atol=1e-6)


def test_alignment_loss_is_lower_when_id_and_text_views_agree():
    model = toy_model()
    items = torch.arange(N_ITEMS)
    with torch.no_grad():
        random_views = model.alignment_loss(items).item()
        model.item_embeddings.copy_(model.item_features @ model.item_text_projection)
        agreeing = model.alignment_loss(items).item()
    assert agreeing < random_views


def test_training_lowers_the_loss_and_is_reproducible():
    history = toy_history()
    profiles = torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(1))
    runs = []
    for _ in range(2):
        model = toy_model(epochs=30, batch_size=2)
        record = train_history_model(model, history, None, profiles)
        runs.append(history_scorer(model, history, profiles)(np.arange(5)))
    assert record.train_loss[-1] < record.train_loss[0]
    assert len(record.train_loss) == 30
    np.testing.assert_array_equal(runs[0], runs[1])


def test_indices_without_feature_rows_are_refused():
    history = pd.DataFrame({"user_index": [0, 9], "item_index": [1, 2]})
    with pytest.raises(ValueError, match=r"user_index runs from 0 to 9.*5 rows"):
        history_scorer(toy_model(), history, torch.zeros(5, WIDTH))
    history = pd.DataFrame({"user_index": [0], "item_index": [N_ITEMS]})
    with pytest.raises(ValueError, match="item_index"):
        train_history_model(toy_model(), history, None, torch.zeros(5, WIDTH))


def test_a_validation_set_with_no_users_is_refused():
    empty = toy_history().iloc[:0]
    with pytest.raises(ValueError, match="validation"):
        train_history_model(toy_model(epochs=5), toy_history(), empty, torch.zeros(5, WIDTH))


def test_training_needs_interactions():
    with pytest.raises(ValueError, match="empty"):
        train_history_model(toy_model(), toy_history().iloc[:0], None, torch.zeros(5, WIDTH))


@pytest.fixture(scope="module")
def small_run(movielens, encoder):
    data = subsample_users(movielens, 150, seed=3)
    split = random_user_split(data.interactions, seed=3)
    items = encoder.encode(item_texts(data.items))
    profiles = encoder.encode(profile_texts(data.users))
    return data, split, items, profiles


def test_on_a_small_run_the_model_beats_popularity(small_run):
    data, split, items, profiles = small_run
    config = HistoryModelConfig(epochs=60, seed=3)
    scorer, info = fit_tailrec(split.train, split.validation, items, profiles, config)
    seen = [split.train, split.validation]
    ndcg = evaluate_ranking(scorer, split.test, seen, data.n_items)["ndcg"].mean()
    popular = popularity_scorer(pd.concat(seen), data.n_items)
    baseline = evaluate_ranking(popular, split.test, seen, data.n_items)["ndcg"].mean()
    assert ndcg > 1.1 * baseline
    assert 1 <= info["epochs"] <= 60 and info["item_item_weight"] >= 0


def test_without_item_item_weights_the_blend_is_off(small_run):
    _, split, items, profiles = small_run
    config = HistoryModelConfig(epochs=5, eval_every=5, seed=3)
    _, info = fit_tailrec(split.train, split.validation, items, profiles, config, item_item=False)
    assert info["item_item_weight"] == 0.0


def test_scoring_a_user_with_no_profile_row_is_refused():
    scorer = history_scorer(toy_model(), toy_history(), torch.zeros(5, WIDTH))
    with pytest.raises(ValueError, match=r"0\.\.4"):
        scorer(np.array([7]))


def test_fit_tailrec_names_missing_columns(small_run):
    _, split, items, profiles = small_run
    renamed = split.train.rename(columns={"user_index": "user_id_text"})
    with pytest.raises(ValueError, match="lacks the column"):
        fit_tailrec(renamed, split.validation, items, profiles)


def test_folding_in_a_click_changes_only_that_users_scores(small_run):
    from tailrec.recommender import fit_tailrec_parts

    _, split, items, profiles = small_run
    config = HistoryModelConfig(epochs=10, seed=3)
    fitted = fit_tailrec_parts(split.train, split.validation, items, profiles, config)
    build, _ = fitted.history_recommender()
    users = np.unique(split.test["user_index"])[:5]
    before = build(fitted.full)(users)
    click = split.test[split.test["user_index"] == users[0]].head(1)[["user_index", "item_index"]]
    after = build(pd.concat([fitted.full, click]))(users)
    assert not np.allclose(before[0], after[0])
    np.testing.assert_array_equal(before[1:], after[1:])


def test_user_steps_raise_the_users_own_items_and_leave_the_model_alone():
    model = toy_model()
    history = toy_history()
    before = [p.detach().clone() for p in model.parameters()]
    profiles = torch.zeros(5, WIDTH)
    plain = history_scorer(model, history, profiles, log_probabilities=True)(np.arange(5))
    tuned = history_scorer(model, history, profiles, log_probabilities=True, user_steps=20)
    tuned = tuned(np.arange(5))
    rows = history["user_index"].to_numpy(), history["item_index"].to_numpy()
    own_plain = pd.Series(plain[rows]).groupby(rows[0]).mean()
    own_tuned = pd.Series(tuned[rows]).groupby(rows[0]).mean()
    assert (own_tuned > own_plain).all()  # each user's own items, on average
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_tuned_vectors_do_not_depend_on_the_batch():
    model = toy_model()
    scorer = history_scorer(model, toy_history(), torch.zeros(5, WIDTH), user_steps=5)
    np.testing.assert_allclose(scorer(np.array([2]))[0], scorer(np.array([0, 2, 4]))[1], rtol=1e-5)


def test_user_steps_must_be_a_whole_number():
    with pytest.raises(ValueError, match="user_steps"):
        history_scorer(toy_model(), toy_history(), torch.zeros(5, WIDTH), user_steps=-1)


def test_an_interrupted_history_model_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import tailrec.history_model as history_module

    history, profiles = toy_history(), torch.zeros(5, WIDTH)
    straight = toy_model(epochs=4)
    train_history_model(straight, history, None, profiles, epochs=4)
    real_save = history_module.save_training_state

    def save_then_stop_after_epoch_2(path, epoch, *rest):
        real_save(path, epoch, *rest)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(history_module, "save_training_state", save_then_stop_after_epoch_2)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        train_history_model(
            toy_model(epochs=4), history, None, profiles, epochs=4, state_path=state
        )
    monkeypatch.setattr(history_module, "save_training_state", real_save)
    resumed = toy_model(epochs=4)
    train_history_model(resumed, history, None, profiles, epochs=4, state_path=state)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
