"""The sampled-softmax loss: its rows, its estimate of the full loss, and training with it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tailrec.history_model import (
    HistoryBilinearModel,
    HistoryModelConfig,
    _BatchLoss,
    train_history_model,
)
from tailrec.sampled_softmax import UserItemRows, _drawn_own_items, sampled_batch_loss
from tailrec.synthetic import power_law_interactions, random_text_features


def _model(n_users: int, n_items: int, **changes) -> tuple[HistoryBilinearModel, torch.Tensor]:
    items = torch.from_numpy(random_text_features(n_items, width=16, seed=1))
    profiles = torch.from_numpy(random_text_features(n_users, width=16, seed=2))
    config = HistoryModelConfig(dim=8, seed=3, **changes)
    return HistoryBilinearModel(items, profiles, config), profiles


def test_user_item_rows_gather_each_users_distinct_items():
    frame = pd.DataFrame({"user_index": [2, 0, 2, 2, 0], "item_index": [5, 1, 3, 5, 4]})
    rows = UserItemRows(frame, n_users=4)
    assert rows.degrees().tolist() == [2, 0, 2, 0]
    row, items, place = rows.gather(torch.tensor([2, 1, 0]))
    assert row.tolist() == [0, 0, 2, 2]
    assert items.tolist() == [3, 5, 1, 4]
    assert place.tolist() == [0, 1, 0, 1]


def test_sampled_loss_estimates_the_full_softmax_loss():
    interactions = power_law_interactions(1_500, n_users=150, n_items=60, seed=4)
    model, profiles = _model(150, 60, input_dropout=0.0, profile_only_rate=0.0, ssl_weight=0.0)
    users = torch.arange(150)
    full = _BatchLoss(model, interactions, profiles, torch.Generator(), torch.device("cpu"))
    with torch.no_grad():
        full_loss = full._full_softmax_loss(users).sum()
        # Many uniform draws over 60 items: the estimate of log Z is close to exact.
        model.config.negatives = 20_000
        rows = UserItemRows(interactions, 150)
        generator = torch.Generator().manual_seed(0)
        estimate, n_users = sampled_batch_loss(
            model, rows, rows.degrees(), users, profiles, generator, torch.device("cpu")
        )
    assert n_users == 150
    assert estimate.item() == pytest.approx(full_loss.item(), rel=0.01)
    with torch.no_grad():
        model.config.negatives = 4  # a rough estimate: further off
        rough, _ = sampled_batch_loss(
            model, rows, rows.degrees(), users, profiles, generator, torch.device("cpu")
        )
    assert abs(rough.item() - full_loss.item()) > abs(estimate.item() - full_loss.item())


def test_training_with_sampled_softmax_learns_and_is_seeded():
    interactions = power_law_interactions(3_000, n_users=300, n_items=100, seed=5)

    def fit() -> tuple[HistoryBilinearModel, list[float]]:
        model, profiles = _model(300, 100, negatives=32, epochs=4, batch_size=64)
        history = train_history_model(model, interactions, None, profiles)
        return model, history.train_loss

    model, losses = fit()
    again, losses_again = fit()
    assert losses[-1] < losses[0]
    assert losses == losses_again
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_negatives_must_be_a_count():
    with pytest.raises(ValueError, match="negatives"):
        HistoryModelConfig(negatives=-1)


def test_drawn_own_items_are_masked_however_often_drawn():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        row = torch.cat([torch.arange(7), torch.randint(7, (40,), generator=generator)])
        row = torch.sort(row).values
        items = torch.randint(30, (len(row),), generator=generator)
        drawn = torch.randint(30, (25,), generator=generator)
        expected = torch.zeros(7, 25, dtype=torch.bool)
        for r, item in zip(row.tolist(), items.tolist(), strict=True):
            expected[r] |= drawn == item
        assert torch.equal(_drawn_own_items(row, items, drawn, 7), expected)


def test_numpy_integers_in_the_config_become_python_ints():
    config = HistoryModelConfig(negatives=np.int64(3), seed=np.int64(1), batch_size=np.uint8(4))
    assert all(type(getattr(config, name)) is int for name in ("negatives", "seed", "batch_size"))
    json.dumps(config.to_dict())  # a saved model's settings are JSON


def test_float_index_columns_train_with_either_loss():
    interactions = power_law_interactions(600, n_users=60, n_items=30, seed=6)
    floats = interactions.astype({"user_index": float, "item_index": float})
    for negatives in (0, 8):
        model, profiles = _model(60, 30, negatives=negatives, epochs=1)
        assert np.isfinite(train_history_model(model, floats, None, profiles).train_loss[0])
