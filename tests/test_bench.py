"""The quality benchmark runs on a tiny sample and writes every file it promises."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tailrec.bench import main, markdown_table


def test_quality_benchmark_writes_results_lists_and_splits(movielens_dir, tmp_path):
    out = tmp_path / "bench"
    args = ["quality", "--data-dir", str(movielens_dir.parent), "--out", str(out)]
    code = main([*args, "--users", "40", "--max-epochs", "1"])
    assert code == 0
    rows = json.loads((out / "results.json").read_text())
    frame = pd.DataFrame(rows)
    assert {"model", "protocol", "group", "metric", "value", "fit_seconds"} <= set(frame.columns)
    assert set(frame["protocol"]) == {
        "published",
        "random_user",
        "few_shot_0",
        "few_shot_1",
        "few_shot_3",
        "few_shot_5",
    }
    core = {"popularity", "ease", "bpr_mf", "tailrec", "tailrec_no_text", "tailrec_no_profile"}
    core |= {"tailrec_no_ssl", "tailrec_no_item_item"}
    assert core <= set(frame["model"])
    assert set(frame["metric"]) == {f"{m}@10" for m in ("ndcg", "recall", "precision", "map")} | {
        "map_full@10"
    }
    assert frame["value"].between(0, 1).all()
    assert "## ndcg@10" in (out / "results.md").read_text()

    # The lists use original ids, 10 per test user, and only items the user had not seen.
    test = pd.read_csv(out / "splits" / "published" / "test.csv")
    train = pd.concat(
        pd.read_csv(out / "splits" / "published" / f"{part}.csv")
        for part in ("train", "validation")
    )
    top = pd.read_csv(out / "topk" / "published" / "ease.csv")
    assert list(top.columns) == ["user_id", "item_id", "rank", "score"]
    assert set(top["user_id"]) == set(test["user_id"])
    assert (top.groupby("user_id").size() == 10).all()
    seen = set(zip(train["user_id"], train["item_id"], strict=True))
    assert not any(pair in seen for pair in zip(top["user_id"], top["item_id"], strict=True))

    # Re-scoring the written lists against the written test split gives the reported precision.
    hits = top.merge(test[["user_id", "item_id"]], on=["user_id", "item_id"])
    precision = (
        hits.groupby("user_id").size().reindex(top["user_id"].unique(), fill_value=0) / 10
    ).mean()
    reported = frame.query(
        "model == 'ease' and protocol == 'published' and group == 'all'"
        " and metric == 'precision@10'"
    )["value"].item()
    assert abs(precision - reported) < 1e-9


def test_markdown_table_has_a_header_rule_and_rows():
    table = pd.DataFrame({"a": [0.12345], "b": [1.0]}, index=pd.Index(["x"], name="row"))
    assert markdown_table(table).splitlines() == [
        "| row | a | b |",
        "|---|---|---|",
        "| x | 0.1235 | 1.0000 |",
    ]


def test_quality_benchmark_refuses_an_unknown_model(movielens_dir, tmp_path, capsys):
    args = ["quality", "--data-dir", str(movielens_dir.parent), "--out", str(tmp_path)]
    assert main([*args, "--users", "40", "--models", "ease", "bivae"]) == 2
    error = capsys.readouterr().err
    assert "bivae" in error and "choose from" in error


def test_a_subset_without_tailrec_still_writes_its_tables(movielens_dir, tmp_path):
    args = ["quality", "--data-dir", str(movielens_dir.parent), "--out", str(tmp_path)]
    assert main([*args, "--users", "40", "--models", "popularity", "ease"]) == 0
    report = (tmp_path / "results.md").read_text()
    assert "## ndcg@10" in report and "best baseline" not in report


@pytest.mark.parametrize("flag", ["--max-epochs", "--users"])
def test_counts_below_one_are_refused(tmp_path, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["quality", "--out", str(tmp_path), flag, "0"])
    assert stop.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["quality", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_feedback_benchmark_writes_rates_per_round_and_update_times(movielens_dir, tmp_path):
    out = tmp_path / "feedback"
    args = ["feedback", "--data-dir", str(movielens_dir.parent), "--out", str(out)]
    assert main([*args, "--users", "60", "--max-epochs", "1", "--rounds", "2"]) == 0
    record = json.loads((out / "feedback.json").read_text())
    frame = pd.DataFrame(record["results"])
    assert set(frame["setting"]) == {"temporal", "few_shot_3"}
    assert set(frame["round"]) == {1, 2}
    models = {"tailrec", "tailrec_steps", "tailrec_no_update", "ease", "ease_no_update"}
    assert models | {"popularity"} == set(frame["model"])
    assert frame["ctr"].between(0, 1).all()
    assert (frame["conversion"] <= frame["ctr"]).all()  # a purchase is also a click
    # Round 1 is shown before any feedback, so an update cannot change it yet.
    first = frame[frame["round"] == 1].set_index(["setting", "group", "model"])["ctr"]
    assert (
        first.xs("tailrec", level="model") == first.xs("tailrec_no_update", level="model")
    ).all()
    assert record["facts"]["update_ms"] > 0
    assert "## ctr: temporal, tail" in (out / "feedback.md").read_text()
