"""The synthetic generator, and the speed benchmark on tiny sizes (speed is never asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tailrec.bench import main
from tailrec.synthetic import power_law_interactions, random_text_features


def test_power_law_interactions_are_unique_in_range_and_seeded():
    frame = power_law_interactions(20_000, n_users=2_000, n_items=500, seed=1)
    assert len(frame) == 20_000
    assert not frame.duplicated(["user_index", "item_index"]).any()
    assert frame["user_index"].between(0, 1_999).all() and frame["item_index"].between(0, 499).all()
    again = power_law_interactions(20_000, n_users=2_000, n_items=500, seed=1)
    assert frame.equals(again)
    assert not frame.equals(power_law_interactions(20_000, n_users=2_000, n_items=500, seed=2))


def test_power_law_interactions_have_a_long_tail():
    counts = np.sort(
        power_law_interactions(20_000, 2_000, 500, seed=1)["item_index"].value_counts()
    )
    top_share = counts[-5:].sum() / counts.sum()  # the top 1% of items
    assert top_share > 0.1  # uniform items would hold 1%


@pytest.mark.parametrize(
    "args, message",
    [((10, 2, 3), "do not fit"), ((0, 2, 3), "n_interactions"), ((5, 5, 5, 42, -1.0), "exponent")],
)
def test_power_law_interactions_refuse_impossible_requests(args, message):
    with pytest.raises(ValueError, match=message):
        power_law_interactions(*args)


def test_random_text_features_are_unit_length():
    vectors = random_text_features(7, width=16, seed=0)
    assert vectors.shape == (7, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


def test_speed_benchmark_runs_on_tiny_sizes_and_writes_its_files(movielens_dir, tmp_path):
    out = tmp_path / "speed"
    args = ["speed", "--data-dir", str(movielens_dir.parent), "--out", str(out), "--sizes", "2000"]
    args += ["--scoring", "200", "500", "--users", "60", "--max-epochs", "2"]
    assert main(args) == 0
    results = json.loads((out / "speed.json").read_text())
    assert results["encoding"]["texts"] == 1682
    assert results["scoring"]["same_top_k_share"] > 0.99  # ties aside, the same lists
    sampled, full = results["scale"]  # 2000 interactions: both losses
    assert (sampled["interactions"], full["interactions"]) == (2000, 2000)
    assert sampled["loss"].startswith("sampled") and full["loss"] == "full softmax"
    assert sampled["peak_memory_mb"] > 0
    models = {row["model"]: row for row in results["training"]}
    assert {"tailrec", "tailrec_sampled_256", "ease", "popularity"} <= set(models)
    assert models["tailrec"]["epochs"] >= 2 and 0 <= models["ease"]["ndcg@10"] <= 1
    assert results["run"]["users"] == 60 and results["run"]["max_epochs"] == 2
    markdown = (out / "speed.md").read_text()
    assert "## One training epoch" in markdown and "## Fitting on the published split" in markdown


def test_speed_benchmark_refuses_an_unknown_part(movielens_dir, tmp_path, capsys):
    args = ["speed", "--data-dir", str(movielens_dir.parent), "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*args, "--parts", "everything"])
    assert "invalid choice" in capsys.readouterr().err


def test_speed_benchmark_refuses_too_few_items_to_score(movielens_dir, tmp_path, capsys):
    args = ["speed", "--data-dir", str(movielens_dir.parent), "--out", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*args, "--scoring", "5", "5"])
    assert "at least 10 items" in capsys.readouterr().err
