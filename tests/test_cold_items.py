"""New-item cold start: the held-out films, the candidate set, text-only vectors, the bench."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tailrec.bench import main
from tailrec.cold_items import (
    NEW_ITEM_MODELS,
    compare_new_items,
    evaluate_new_items,
    fit_warm_model,
    new_item_split,
    text_only_scorer,
)
from tailrec.history_model import HistoryBilinearModel, HistoryModelConfig

WIDTH = 16


def taste_by_text(n_users: int = 80, n_items: int = 100, n_groups: int = 4, seed: int = 0):
    """Users like only the films of one group, and a film's text says its group.

    Returns interactions, item features (group centre plus noise) and profile
    features (noise: they must not help).
    """
    rng = np.random.default_rng(seed)
    rows = [
        (user, int(item))
        for user in range(n_users)
        for item in rng.choice(np.arange(user % n_groups, n_items, n_groups), 15, replace=False)
    ]
    interactions = pd.DataFrame(rows, columns=["user_index", "item_index"])
    centres = rng.normal(size=(n_groups, WIDTH))
    items = centres[np.arange(n_items) % n_groups] + 0.3 * rng.normal(size=(n_items, WIDTH))
    profiles = rng.normal(size=(n_users, WIDTH))
    return interactions, items.astype(np.float32), profiles.astype(np.float32)


def small_config(**changes) -> HistoryModelConfig:
    settings = {"dim": 16, "epochs": 40, "eval_every": 2, "patience": 6, "batch_size": 32}
    return HistoryModelConfig(**{**settings, "eval_k": 5, "seed": 0, **changes})


def test_held_out_films_have_no_interactions_in_training_or_validation(movielens):
    split = new_item_split(movielens.interactions, seed=42)
    assert len(split.new_items) == round(0.1 * movielens.n_items)
    new = set(split.new_items)
    assert not new & set(split.train["item_index"])
    assert not new & set(split.validation["item_index"])
    assert set(split.test["item_index"]) <= new
    # Test users have a warm history, and every new-film rating of such a user is tested.
    assert set(split.test["user_index"]) <= set(split.train["user_index"])
    is_new = movielens.interactions["item_index"].isin(split.new_items)
    assert len(split.train) + len(split.validation) == (~is_new).sum()
    assert len(split.test) == is_new.sum()  # every ML-100k user has 20+ ratings
    np.testing.assert_array_equal(new_item_split(movielens.interactions).new_items, split.new_items)
    other = new_item_split(movielens.interactions, seed=7).new_items
    assert not np.array_equal(other, split.new_items)


def test_users_with_no_warm_history_are_not_tested():
    # User 0 rated every film; user f + 1 rated film f alone, so whichever film is new,
    # one of its raters has no warm history and cannot be asked about it.
    interactions = pd.DataFrame(
        {"user_index": [0] * 5 + [1, 2, 3, 4, 5], "item_index": [0, 1, 2, 3, 4] * 2}
    )
    split = new_item_split(interactions, new_fraction=0.2, seed=0)  # one film of five
    assert len(split.new_items) == 1
    assert split.test["user_index"].tolist() == [0]
    assert split.test["item_index"].tolist() == split.new_items.tolist()


def test_the_candidate_set_is_the_new_films_only(movielens):
    split = new_item_split(movielens.interactions, seed=42)
    # An oracle over the whole catalogue that ranks every warm film above the test films:
    # only if warm films are out of the candidate set are the test films found first.
    oracle = np.zeros((movielens.n_users, movielens.n_items))
    oracle[:, split.warm_items] = 10.0
    oracle[split.test["user_index"], split.test["item_index"]] = 1.0
    per_user = evaluate_new_items(lambda users: oracle[users][:, split.new_items], split, k=10)
    assert set(per_user["user_index"]) == set(split.test["user_index"])
    np.testing.assert_allclose(per_user["ndcg"], 1.0)
    with pytest.raises(ValueError, match="one column per new film"):
        evaluate_new_items(lambda users: oracle[users], split, k=10)


def toy_model(**changes) -> HistoryBilinearModel:
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(12, WIDTH, generator=generator)
    profiles = torch.randn(5, WIDTH, generator=generator)
    return HistoryBilinearModel(items, profiles, HistoryModelConfig(dim=6, **changes))


def test_text_only_vectors_do_not_depend_on_id_embeddings_or_bias():
    model = toy_model()
    new_features = torch.randn(3, WIDTH, generator=torch.Generator().manual_seed(1))
    history = pd.DataFrame({"user_index": [0, 1, 1], "item_index": [2, 3, 4]})
    scorer = text_only_scorer(model, history, torch.zeros(5, WIDTH), new_features)
    vectors, scores = model.item_vectors_from_text(new_features), scorer(np.array([0, 1]))
    with torch.no_grad():
        model.item_embeddings.normal_()
        model.item_bias.normal_()
    torch.testing.assert_close(model.item_vectors_from_text(new_features), vectors)
    np.testing.assert_array_equal(scorer(np.array([0, 1])), scores)
    with torch.no_grad():  # the text projection is what they are made of
        model.item_text_projection.mul_(2.0)
    torch.testing.assert_close(model.item_vectors_from_text(new_features), 2 * vectors)


def test_text_only_vectors_need_item_text_of_the_same_width():
    with pytest.raises(ValueError, match="use_item_text=True"):
        toy_model(use_item_text=False).item_vectors_from_text(torch.zeros(2, WIDTH))
    with pytest.raises(ValueError, match=r"width 16\); got width 5"):
        toy_model().item_vectors_from_text(torch.zeros(2, 5))


def test_the_model_is_trained_on_the_warm_catalogue_only():
    # New films are no softmax negatives: the model's catalogue is the warm films alone.
    interactions, items, profiles = taste_by_text()
    split = new_item_split(interactions, seed=0)
    model, epochs = fit_warm_model(split, items, profiles, small_config(epochs=2))
    assert model.n_items == len(split.warm_items) == 90 and epochs in (1, 2)
    torch.testing.assert_close(model.item_features, torch.as_tensor(items[split.warm_items]))


def test_when_text_decides_taste_the_text_only_score_beats_random_clearly():
    interactions, items, profiles = taste_by_text()
    results = compare_new_items(interactions, items, profiles, seed=0, k=5, config=small_config())
    assert list(results.columns) == ["model", "metric", "value", "users"]
    assert list(dict.fromkeys(results["model"])) == list(NEW_ITEM_MODELS)
    assert results["users"].nunique() == 1 and results["value"].between(0, 1).all()
    ndcg = results[results["metric"] == "ndcg@5"].set_index("model")["value"]
    assert ndcg["tailrec"] > ndcg["random"] + 0.2
    assert ndcg["content_cosine"] > ndcg["random"] + 0.2
    assert results.attrs["run"]["new_items"] == 10


def test_the_bench_subcommand_writes_its_files(movielens_dir, tmp_path):
    out = tmp_path / "cold"
    args = ["new-items", "--data-dir", str(movielens_dir.parent), "--out", str(out)]
    assert main([*args, "--users", "40", "--max-epochs", "1"]) == 0
    record = json.loads((out / "new_items.json").read_text())
    frame = pd.DataFrame(record["results"])
    assert set(frame["model"]) == set(NEW_ITEM_MODELS)
    assert set(frame["metric"]) == {"recall@10", "ndcg@10"}
    assert record["run"]["seed"] == 42 and record["run"]["tailrec_epochs"] == 1
    report = (out / "new_items.md").read_text()
    assert "Candidates: the held-out (new) films only" in report
    assert all(name in report for name in NEW_ITEM_MODELS)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"new_fraction": 0.0}, "new_fraction must be between 0 and 1"),
        ({"new_fraction": 1.0}, "new_fraction must be between 0 and 1"),
        ({"val_fraction": -0.1}, "val_fraction must be between 0 and 1"),
        ({"new_fraction": 0.004}, "both need at least one"),
        ({"seed": -1}, "seed must be a whole number"),
    ],
)
def test_a_bad_split_setting_is_refused(changes, message):
    interactions, _, _ = taste_by_text()
    with pytest.raises(ValueError, match=message):
        new_item_split(interactions, **changes)


def test_bad_inputs_to_the_comparison_are_refused():
    interactions, items, profiles = taste_by_text()
    with pytest.raises(ValueError, match="lacks the column"):
        new_item_split(interactions.rename(columns={"item_index": "film"}))
    with pytest.raises(ValueError, match=r"k = 11 is larger than the candidate set \(10"):
        compare_new_items(interactions, items, profiles, k=11, config=small_config())
    with pytest.raises(ValueError, match="item_features has 50 rows"):
        compare_new_items(interactions, items[:50], profiles, k=5, config=small_config())
    with pytest.raises(ValueError, match="max_epochs must be a whole number"):
        compare_new_items(interactions, items, profiles, max_epochs=0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--new-fraction", "1.5"], "--new-fraction must be between 0 and 1"),
        (["--seed", "-3"], "--seed must be a whole number"),
    ],
)
def test_the_bench_subcommand_refuses_bad_values(tmp_path, flags, message, capsys):
    assert main(["new-items", "--out", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_bench_subcommand_refuses_a_count_below_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["new-items", "--out", str(tmp_path), "--max-epochs", "0"])
    assert stop.value.code == 2
    assert "at least 1" in capsys.readouterr().err
