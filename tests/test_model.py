"""The bilinear model, its checkpoints, and training."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call

from tailrec.baselines import popularity_scorer, random_scorer
from tailrec.checkpoint import load_checkpoint, save_checkpoint, settings_path
from tailrec.data import subsample_users
from tailrec.evaluation import evaluate_ranking, model_scorer
from tailrec.model import BilinearModel, ModelConfig
from tailrec.splits import make_split
from tailrec.training import NegativeSampler, TrainConfig, train

N_USERS, N_ITEMS, FEATURES = 6, 9, 5


def make_model(use_ids=True, use_text=True, item_bias=True, dim=4, seed=0) -> BilinearModel:
    """A small model whose W and item bias are not the trivial initial values."""
    generator = torch.Generator().manual_seed(seed)
    features = {}
    if use_text:
        features = {
            "user_features": torch.randn(N_USERS, FEATURES, generator=generator),
            "item_features": torch.randn(N_ITEMS, FEATURES, generator=generator),
        }
    config = ModelConfig(dim=dim, use_ids=use_ids, use_text=use_text, item_bias=item_bias)
    model = BilinearModel(N_USERS, N_ITEMS, config=config, generator=generator, **features)
    with torch.no_grad():
        model.W.copy_(torch.randn(dim, dim, generator=generator))
        if item_bias:
            model.item_bias.copy_(torch.randn(N_ITEMS, generator=generator))
    return model


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize(
    "use_ids, use_text, item_bias", [(True, True, True), (True, False, False), (False, True, True)]
)
def test_shapes(use_ids, use_text, item_bias):
    model = make_model(use_ids, use_text, item_bias)
    users, items = torch.tensor([0, 5, 2]), torch.tensor([8, 0, 3])
    assert model.forward(users, items).shape == (3,)
    assert model.score_all(users).shape == (3, N_ITEMS)
    assert model.user_vectors(users).shape == (3, 4)
    assert model.item_vectors().shape == (N_ITEMS, 4)
    assert model.item_vectors(items).shape == (3, 4)


def test_forward_is_the_explicit_double_sum():
    model = make_model()
    u = model.user_vectors(torch.arange(N_USERS)).detach().double()
    v = model.item_vectors().detach().double()
    W = model.W.detach().double()
    bias = model.item_bias.detach().double()
    for user, item in [(0, 0), (3, 7), (5, 2), (1, 8)]:
        expected = sum(
            u[user, a] * W[a, b] * v[item, b] for a in range(W.shape[0]) for b in range(W.shape[1])
        )
        expected += bias[item]
        got = model(torch.tensor([user]), torch.tensor([item]))[0]
        assert got.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-5)


def test_user_and_item_vectors_sum_ids_and_projected_text():
    model = make_model()
    users = torch.tensor([1, 4])
    expected = model.user_embeddings(users) + model.user_text_projection(model.user_features[users])
    torch.testing.assert_close(model.user_vectors(users), expected)
    from_text = model.user_vectors_from_text(model.user_features[users])
    torch.testing.assert_close(from_text, model.user_text_projection(model.user_features[users]))


def test_score_all_agrees_with_forward():
    model = make_model()
    users = torch.tensor([0, 3, 5])
    table = model.score_all(users)
    for row, user in enumerate(users.tolist()):
        pairs = model(torch.full((N_ITEMS,), user), torch.arange(N_ITEMS))
        torch.testing.assert_close(table[row], pairs, rtol=1e-5, atol=1e-5)
    # Explicit user vectors (a user built from text) replace the lookup.
    vecs = model.user_vectors(users)
    torch.testing.assert_close(model.score_all(users, user_vecs=vecs), table)


def test_identity_w_is_a_dot_product():
    model = make_model(item_bias=False)
    with torch.no_grad():
        model.W.copy_(torch.eye(4))
    users = torch.tensor([2])
    expected = model.user_vectors(users) @ model.item_vectors().T
    torch.testing.assert_close(model.score_all(users), expected)


def test_gradcheck_of_the_bilinear_score_in_w():
    model = make_model().double()
    users, items = torch.tensor([0, 2, 5, 3]), torch.tensor([1, 8, 4, 4])
    W = model.W.detach().clone().requires_grad_(True)

    def score(weight):
        return functional_call(model, {"W": weight}, (users, items))

    assert torch.autograd.gradcheck(score, (W,), eps=1e-6, atol=1e-6)
    # And the analytic gradient itself: d z / d W_ab = u_a i_b.
    (grad,) = torch.autograd.grad(score(W)[1], W)
    u = model.user_vectors(users[1:2])[0].detach()
    v = model.item_vectors(items[1:2])[0].detach()
    torch.testing.assert_close(grad, torch.outer(u, v))


def test_text_without_features_is_refused():
    with pytest.raises(ValueError, match="use_text"):
        BilinearModel(3, 4, config=ModelConfig(use_text=True))
    with pytest.raises(ValueError, match="use_text"):
        BilinearModel(3, 4, user_features=torch.zeros(3, 2), config=ModelConfig(use_text=True))
    with pytest.raises(ValueError):
        BilinearModel(3, 4, config=ModelConfig(use_ids=False, use_text=False))
    with pytest.raises(ValueError, match="shape"):
        BilinearModel(3, 4, torch.zeros(2, 5), torch.zeros(4, 5), ModelConfig())
    with pytest.raises(ValueError, match="NaN"):
        BilinearModel(3, 4, torch.full((3, 5), float("nan")), torch.zeros(4, 5), ModelConfig())
    ids_only = BilinearModel(3, 4, config=ModelConfig(use_text=False))
    with pytest.raises(ValueError):
        ids_only.user_vectors_from_text(torch.zeros(1, 5))


def test_seeded_initialisation():
    a, b, c = make_model(seed=1), make_model(seed=1), make_model(seed=2)
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(tensor, b.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(a.user_embeddings.weight, c.user_embeddings.weight)


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    model = make_model()
    settings = {"seed": 7, "split": "temporal", "history": {"train_loss": [0.5, 0.25]}}
    path = save_checkpoint(model, tmp_path / "models" / "model.pt", settings)
    assert path == tmp_path / "models" / "model.pt"
    loaded, loaded_settings = load_checkpoint(path)
    assert loaded_settings == settings
    assert loaded.config == model.config
    assert (loaded.n_users, loaded.n_items) == (N_USERS, N_ITEMS)
    assert not loaded.training
    users = torch.arange(N_USERS)
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_all(users), model.score_all(users), rtol=0, atol=0)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    twin = settings_path(path)
    assert twin == tmp_path / "models" / "model.json"
    written = json.loads(twin.read_text())
    assert written["model_config"] == model.config.to_dict() and written["seed"] == 7
    # Only the two final files: the temporary names were renamed into place.
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.pt"]


def test_checkpoint_round_trip_ids_only(tmp_path):
    model = make_model(use_text=False, item_bias=False)
    loaded, settings = load_checkpoint(save_checkpoint(model, tmp_path / "ids.pt"))
    assert settings == {}
    torch.testing.assert_close(
        loaded.score_all(torch.arange(N_USERS)), model.score_all(torch.arange(N_USERS))
    )


def test_load_refuses_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(path)


def test_load_refuses_a_truncated_checkpoint(tmp_path):
    path = save_checkpoint(make_model(), tmp_path / "model.pt")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError):
        load_checkpoint(path)


def test_load_refuses_other_torch_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a tailrec checkpoint"):
        load_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a tailrec checkpoint"):
        load_checkpoint(path)
    payload = torch.load(save_checkpoint(make_model(), tmp_path / "m.pt"), weights_only=True)
    payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(ValueError, match="version"):
        load_checkpoint(path)


def test_load_refuses_an_incomplete_checkpoint(tmp_path):
    path = tmp_path / "incomplete.pt"
    torch.save({"format": "tailrec-bilinear", "version": 1}, path)
    with pytest.raises(ValueError):
        load_checkpoint(path)


def test_load_of_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nowhere.pt")


class _TouchOnLoad:
    """Unpickling this (outside weights_only) would create ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


class _StatefulPayload:
    """A custom class whose ``__setstate__`` creates a marker file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).touch()
        self.__dict__.update(state)


@pytest.mark.parametrize("payload_class", [_TouchOnLoad, _StatefulPayload])
def test_load_never_runs_code_from_the_file(tmp_path, payload_class):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save(
        {"format": "tailrec-bilinear", "version": 1, "payload": payload_class(str(marker))}, path
    )
    assert not marker.exists()  # saving did not run it either
    with pytest.raises(ValueError):
        load_checkpoint(path)
    assert not marker.exists()
    # Control: an unrestricted unpickler does run it, so the payload really is live.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_refuses_a_plain_pickle_with_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_TouchOnLoad(str(marker)), protocol=2))
    with pytest.raises(ValueError):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.load(io.BytesIO(path.read_bytes()))
    assert marker.exists()


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def block_split(block_interactions):
    """Synthetic interactions with two user groups that only pick items of their group."""
    frame = block_interactions(n_users=60, n_items=40, per_user=12, seed=0)
    return make_split("random_user", frame, test_fraction=0.25, val_fraction=0.15, seed=0)


def quick_config(**overrides) -> TrainConfig:
    values = {
        "epochs": 25,
        "batch_size": 64,
        "lr": 0.05,
        "n_negatives": 4,
        "patience": 25,
        "eval_k": 5,
        "seed": 0,
        "progress": False,
    }
    values.update(overrides)
    return TrainConfig(**values)


def train_block_model(split, model_seed=0, state_path=None, **overrides):
    model = BilinearModel(
        60,
        40,
        config=ModelConfig(dim=8, use_text=False, item_bias=True),
        generator=torch.Generator().manual_seed(model_seed),
    )
    config = quick_config(**overrides)
    history = train(model, split.train, split.validation, config, "cpu", state_path)
    return model, history


def test_training_learns_the_structure_and_beats_baselines(block_split):
    model, history = train_block_model(block_split)
    seen = [block_split.train, block_split.validation]

    def ndcg(scorer):
        return evaluate_ranking(scorer, block_split.test, seen, 40, k=5)["ndcg"].mean()

    model_ndcg = ndcg(model_scorer(model))
    random_ndcg = ndcg(random_scorer(40, seed=0))
    popularity_ndcg = ndcg(popularity_scorer(block_split.train, 40))
    assert model_ndcg > random_ndcg + 0.15
    assert model_ndcg > popularity_ndcg + 0.15
    assert history.train_loss[-1] < history.train_loss[0]
    # The model scores a user's own group above the other group.
    scores = model_scorer(model)(np.arange(60))
    own = np.arange(40)[None, :] % 2 == np.arange(60)[:, None] % 2
    assert scores[own].mean() > scores[~own].mean()


def test_training_keeps_the_best_epoch(block_split):
    model, history = train_block_model(block_split, epochs=6)
    assert len(history.train_loss) == len(history.validation_ndcg) == len(history.seconds) == 6
    best = int(np.argmax(history.validation_ndcg)) + 1
    assert history.best_epoch == best
    final = evaluate_ranking(
        model_scorer(model), block_split.validation, [block_split.train], 40, k=5
    )["ndcg"].mean()
    assert final == pytest.approx(history.validation_ndcg[best - 1], abs=1e-12)
    frame = history.to_frame()
    assert frame["epoch"].tolist() == list(range(1, 7))


def test_training_stops_early_without_improvement(block_split):
    # With lr=0 nothing changes, so epoch 1 stays best and patience runs out.
    _, history = train_block_model(block_split, lr=0.0, epochs=10, patience=2)
    assert history.stopped_early
    assert history.best_epoch == 1
    assert len(history.train_loss) == 3


def test_training_is_reproducible(block_split):
    a, history_a = train_block_model(block_split, epochs=4)
    b, history_b = train_block_model(block_split, epochs=4)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert history_a.train_loss == history_b.train_loss
    assert history_a.validation_ndcg == history_b.validation_ndcg
    assert history_a.best_epoch == history_b.best_epoch

    # Another training seed (same initial weights) gives other weights.
    c, history_c = train_block_model(block_split, epochs=4, seed=1)
    assert not torch.equal(a.W, c.W)
    assert history_a.train_loss != history_c.train_loss
    # Another model seed gives other weights too.
    d, _ = train_block_model(block_split, model_seed=1, epochs=4)
    assert not torch.equal(a.user_embeddings.weight, d.user_embeddings.weight)


def test_absurd_learning_rate_raises(block_split):
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_block_model(block_split, lr=1e30, epochs=3)


def test_negative_sampler_never_returns_a_training_positive(block_split):
    train_data = block_split.train
    sampler = NegativeSampler(train_data, 40, torch.Generator().manual_seed(0))
    users = torch.tensor(train_data["user_index"].to_numpy())
    negatives = sampler.sample(users, 5)
    assert negatives.shape == (len(users), 5)
    positives = set(zip(train_data["user_index"], train_data["item_index"], strict=True))
    pairs = zip(users.repeat_interleave(5).tolist(), negatives.reshape(-1).tolist(), strict=True)
    assert not any(pair in positives for pair in pairs)
    assert negatives.min() >= 0 and negatives.max() < 40


def test_small_movielens_training(movielens):
    data = subsample_users(movielens, 60, seed=0)
    split = make_split("temporal", data.interactions, seed=0)
    model = BilinearModel(
        data.n_users,
        data.n_items,
        config=ModelConfig(dim=16, use_text=False),
        generator=torch.Generator().manual_seed(0),
    )
    history = train(
        model, split.train, split.validation, TrainConfig(epochs=2, seed=0, progress=False), "cpu"
    )
    assert len(history.train_loss) == 2
    assert all(np.isfinite(history.train_loss))
    assert history.train_loss[1] < history.train_loss[0]
    assert all(0.0 <= v <= 1.0 for v in history.validation_ndcg)
    per_user = evaluate_ranking(
        model_scorer(model), split.test, [split.train, split.validation], data.n_items, k=10
    )
    assert set(per_user["user_index"]) <= set(range(data.n_users))
    assert per_user["ndcg"].between(0, 1).all()
    assert isinstance(per_user, pd.DataFrame) and len(per_user) == 60


def test_a_checkpoint_named_like_its_settings_file_is_refused(tmp_path):
    model = BilinearModel(3, 4, config=ModelConfig(dim=2, use_text=False))
    with pytest.raises(ValueError, match=r"\.json"):
        save_checkpoint(model, tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()


def test_an_interrupted_run_resumes_to_the_same_weights(block_split, tmp_path, monkeypatch):
    import tailrec.training as training_module

    straight, straight_history = train_block_model(block_split, epochs=5)
    state = tmp_path / "state.pt"
    real_evaluate = training_module.evaluate_ranking
    calls = {"n": 0}

    def interrupt_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user stopped the run during epoch 3
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training_module, "evaluate_ranking", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_block_model(block_split, epochs=5, state_path=state)
    monkeypatch.setattr(training_module, "evaluate_ranking", real_evaluate)
    resumed, resumed_history = train_block_model(block_split, epochs=5, state_path=state)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert resumed_history.validation_ndcg == straight_history.validation_ndcg
    assert resumed_history.best_epoch == straight_history.best_epoch


def test_a_training_state_from_other_settings_or_a_damaged_one_is_refused(block_split, tmp_path):
    state = tmp_path / "state.pt"
    train_block_model(block_split, epochs=1, state_path=state)
    with pytest.raises(ValueError, match="other training settings"):
        train_block_model(block_split, epochs=1, lr=0.01, state_path=state)
    state.write_bytes(b"not a state")
    with pytest.raises(ValueError, match="delete"):
        train_block_model(block_split, epochs=1, state_path=state)
