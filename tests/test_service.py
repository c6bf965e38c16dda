"""The recommender on a practitioner's own logs: fit, save and load, recommend, evaluate, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tailrec.cli import main
from tailrec.data import subsample_users
from tailrec.history_model import HistoryModelConfig
from tailrec.logs import Columns, read_attribute_table, read_interactions
from tailrec.service import MODEL_FILE, TrainedRecommender, fit_on_logs, index_logs
from tailrec.shop_export import export_as_shop

COLUMNS = Columns("customer_id", "product_id", "stars", "ordered_at")
CUTOFF = "1998-02-01"


@pytest.fixture(scope="module")
def shop(movielens, tmp_path_factory):
    """A 120-customer shop export, its orders split by date into a training and a test file."""
    folder = tmp_path_factory.mktemp("shop")
    paths = export_as_shop(subsample_users(movielens, 120, seed=3), folder)
    orders = pd.read_csv(paths["orders.csv"], dtype=str)
    later = orders["ordered_at"] >= CUTOFF
    orders[~later].to_csv(folder / "train.csv", index=False)
    orders[later].to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(shop):
    frame, _, reading = read_interactions(shop / "train.csv", COLUMNS)
    items, _ = read_attribute_table(shop / "products.csv", "product_id", ["description"], "item")
    users, _ = read_attribute_table(shop / "customers.csv", "customer_id", None, "user")
    data = index_logs(frame, items, users)
    return fit_on_logs(data, config=HistoryModelConfig(epochs=5), reading=reading)


def test_ids_come_back_as_the_strings_given(trained):
    assert all(len(u) == 4 for u in trained.user_ids)  # leading zeros kept: "0007"
    user = trained.user_ids[0]
    answer = trained.recommend(user, k=5)
    assert answer.user_id == user
    assert all(item["item_id"].startswith("SKU-") for item in answer.items)
    assert "Genres:" in answer.items[0]["text"]


def test_exclude_seen_leaves_out_the_users_items(trained):
    user = trained.user_ids[1]
    index = trained.user_position(user)
    mine = trained.interactions.loc[trained.interactions["user_index"] == index, "item_index"]
    seen = {trained.item_ids[i] for i in mine}
    listed = {i["item_id"] for i in trained.recommend(user, k=30, exclude_seen=True).items}
    assert not listed & seen
    everything = trained.recommend(user, k=len(trained.item_ids)).items
    assert seen <= {i["item_id"] for i in everything}


def test_saved_and_loaded_model_gives_the_same_lists(trained, tmp_path):
    trained.save(tmp_path / "model")
    loaded = TrainedRecommender.load(tmp_path / "model")
    for user in trained.user_ids[:5]:
        assert loaded.recommend(user, k=10).items == trained.recommend(user, k=10).items
    first = trained.item_ids[:3]
    assert loaded.recommend_new(history=first).items == trained.recommend_new(history=first).items
    assert loaded.reading == trained.reading


def test_new_user_with_nothing_gets_popularity_and_is_told(trained):
    answer = trained.recommend_new(k=5)
    assert answer.basis.startswith("popularity")
    counts = trained.interactions["item_index"].value_counts()
    assert answer.items[0]["item_id"] == trained.item_ids[counts.index[0]]


def test_new_user_with_a_profile_is_served_through_the_encoder(trained, encoder):
    student = trained.recommend_new(profile="age: 19. occupation: student", k=10, encoder=encoder)
    retired = trained.recommend_new(profile="age: 71. occupation: retired", k=10, encoder=encoder)
    assert student.basis == "a profile"
    assert [i["item_id"] for i in student.items] != [i["item_id"] for i in retired.items]


def test_new_user_history_is_folded_in_without_retraining(trained):
    before = [p.detach().clone() for p in trained.model.parameters()]
    first = trained.recommend_new(history=[trained.item_ids[0]], k=10)
    more = trained.item_ids[:20]
    later = trained.recommend_new(history=more, k=10)
    assert first.items != later.items
    assert not {i["item_id"] for i in later.items} & set(more)  # what they have is not offered
    after = list(trained.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("k", [0, -1, 10**6, 2.5, True])
def test_bad_k_is_refused(trained, k):
    with pytest.raises(ValueError, match="k"):
        trained.recommend(trained.user_ids[0], k=k)


def test_unknown_user_and_items_are_named(trained):
    user = trained.user_ids[0]
    with pytest.raises(ValueError, match=rf"did you mean '{user}'"):
        trained.recommend(user.lstrip("0"), k=5)
    with pytest.raises(ValueError, match="'SKU-99999'"):
        trained.recommend_new(history=["SKU-99999"])


def test_evaluate_reports_segments_and_new_users(trained, shop):
    test, _, _ = read_interactions(shop / "test.csv", COLUMNS)
    table, notes = trained.evaluate(test, k=10)
    assert table.index[0] == "all"
    assert set(table.index) <= {"all", "head", "torso", "tail", "profile only", "new"}
    assert table["users"].iloc[0] == table["users"].iloc[1:].sum()
    assert ((table["ndcg"] >= 0) & (table["ndcg"] <= 1)).all()
    assert {"popularity_ndcg", "popularity_recall"} <= set(table.columns)
    if "new" in table.index:  # new users get the popularity list: the two columns agree
        assert table.loc["new", "ndcg"] == table.loc["new", "popularity_ndcg"]
    unseen = ~test["item_id"].isin(trained.item_ids)
    if unseen.any():
        assert any("items the model has not seen" in n for n in notes)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the garbage file
def test_model_folder_refuses_other_files(tmp_path):
    with pytest.raises(ValueError, match=r"holds no model\.pt"):
        TrainedRecommender.load(tmp_path)
    torch.save({"format": "something-else"}, tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match="not a tailrec model"):
        TrainedRecommender.load(tmp_path)
    (tmp_path / MODEL_FILE).write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="Fit the model again"):
        TrainedRecommender.load(tmp_path)


def test_a_truncated_model_file_is_refused(trained, tmp_path):
    trained.save(tmp_path)
    data = (tmp_path / MODEL_FILE).read_bytes()
    (tmp_path / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Fit the model again"):
        TrainedRecommender.load(tmp_path)


def test_profile_needs_a_model_fitted_with_users(trained):
    without_users = dataclasses.replace(trained, profiles=None, prior_settings=None)
    with pytest.raises(ValueError, match="without a user table"):
        without_users.recommend_new(profile="age: 30")
    assert without_users.recommend_new(history=trained.item_ids[:2]).basis == "2 item(s) of history"


def test_cli_round_trip_on_a_shop_export(shop, tmp_path, capsys):
    out = tmp_path / "model"
    fit = [
        "fit",
        "--interactions",
        str(shop / "train.csv"),
        "--items",
        str(shop / "products.csv"),
        "--item-id-col",
        "product_id",
        "--item-text-cols",
        "description",
        "--users",
        str(shop / "customers.csv"),
        "--user-col",
        "customer_id",
        "--item-col",
        "product_id",
        "--rating-col",
        "stars",
        "--time-col",
        "ordered_at",
        "--epochs",
        "5",
        "--out",
        str(out),
    ]
    assert main(fit) == 0
    printed = capsys.readouterr().out
    assert "separator ';'" in printed and "times read" in printed and "model saved" in printed
    user = pd.read_csv(shop / "train.csv", dtype=str)["customer_id"].iloc[0]

    assert main(["recommend", "--model", str(out), "--user", user, "-k", "3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["user_id"] == user and len(answer["items"]) == 3

    assert main(["recommend", "--model", str(out), "--profile", "age: 30. gender: F"]) == 0
    assert json.loads(capsys.readouterr().out)["basis"] == "a profile"

    assert main(["recommend", "--model", str(out)]) == 0
    assert "popularity" in json.loads(capsys.readouterr().out)["basis"]

    assert main(["evaluate", "--model", str(out), "--test", str(shop / "test.csv"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert "all" in metrics and 0 <= metrics["all"]["ndcg"] <= 1


@pytest.mark.parametrize(
    "args, named",
    [
        (["recommend", "--user", "nobody"], "Unknown user 'nobody'"),
        (["recommend", "-k", "0"], "k must be"),
        (["recommend", "--user", "x", "--profile", "y"], "one or the other"),
        (["evaluate", "--test", "missing.csv"], "does not exist"),
    ],
)
def test_cli_bad_requests_exit_2_with_one_line(trained, tmp_path, capsys, args, named):
    trained.save(tmp_path / "model")
    assert main([args[0], "--model", str(tmp_path / "model"), *args[1:]]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error


def test_cli_fit_refuses_a_used_output_folder(shop, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    args = ["fit", "--interactions", str(shop / "train.csv"), "--out", str(tmp_path)]
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_customer_with_a_profile_and_no_orders_is_served_by_the_profile(trained):
    segments = trained.segments()
    waiting = segments.index[segments == "profile only"]
    assert len(waiting) > 0  # customers whose first order came after the cutoff
    user = trained.user_ids[waiting[0]]
    answer = trained.recommend(user, k=10)
    assert answer.basis == "a profile, no history yet"
    assert answer.items != trained.recommend_new(k=10).items  # not simply the popularity list


def test_the_history_recommender_is_the_served_model(trained):
    build = trained.history_recommender()
    scores = build(trained.interactions)(np.array([0]))[0]
    listed = [i["item_id"] for i in trained.recommend(trained.user_ids[0], k=5).items]
    assert [trained.item_ids[i] for i in np.argsort(-scores, kind="stable")[:5]] == listed
    frame = pd.DataFrame({"user_id": [trained.user_ids[0], "nobody"], "item_id": ["x", "y"]})
    frame.loc[0, "item_id"] = trained.item_ids[0]
    assert trained.indexed(frame)["user_index"].tolist() == [0]


def test_repeated_history_ids_count_once(trained):
    first = trained.item_ids[:2]
    once = trained.recommend_new(history=first)
    repeated = trained.recommend_new(history=[first[0]] * 5 + [first[1]])
    assert repeated.items == once.items and repeated.basis == "2 item(s) of history"


def test_a_user_who_has_seen_everything_is_told_so(trained):
    everything = set(range(len(trained.item_ids)))
    with pytest.raises(ValueError, match="every item"):
        trained._ranked(np.zeros(len(everything)), 0, 1, everything)


def test_spaces_around_a_requested_id_are_ignored_as_when_reading(trained):
    user = trained.user_ids[0]
    assert trained.recommend(f" {user} ", k=3).items == trained.recommend(user, k=3).items


def test_a_model_file_path_is_accepted_for_its_folder(trained, tmp_path):
    trained.save(tmp_path / "model")
    loaded = TrainedRecommender.load(tmp_path / "model" / MODEL_FILE)
    assert loaded.user_ids == trained.user_ids


def test_a_catalogue_smaller_than_ten_and_users_with_few_interactions(encoder):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}") for u in range(30) for i in rng.choice(9, 4, replace=False)]
    data = index_logs(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    trained = fit_on_logs(data, config=HistoryModelConfig(epochs=2))
    assert len(trained.recommend("u0", k=5, exclude_seen=True).items) == 5


def test_logs_where_nobody_interacted_twice_are_refused_clearly():
    data = index_logs(pd.DataFrame({"user_id": ["a", "b", "c"], "item_id": ["x", "y", "z"]}))
    with pytest.raises(ValueError, match="No user has 2 or more interactions"):
        fit_on_logs(data)


def test_cli_refuses_bad_epochs_and_an_unwritable_out_before_training(shop, tmp_path, capsys):
    base = ["fit", "--interactions", str(shop / "train.csv"), "--user-col", "customer_id"]
    base += ["--item-col", "product_id"]
    with pytest.raises(SystemExit):
        main([*base, "--epochs", "0", "--out", str(tmp_path / "m")])
    assert "--epochs" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main([*base, "--out", str(tmp_path / "afile" / "sub")]) == 2
    error = capsys.readouterr().err
    assert "training" not in error and "Traceback" not in error


def test_a_description_moves_a_new_users_list_towards_matching_item_texts(trained, encoder):
    plain = trained.recommend_new(k=20)
    told = trained.recommend_new(k=20, description="horror films", encoder=encoder)
    assert told.basis.endswith("and a description")

    def horror(answer):
        return sum("Horror" in item["text"] for item in answer.items)

    assert horror(told) > horror(plain)
    with pytest.raises(ValueError, match="description text is empty"):
        trained.recommend_new(description="  ")


def test_a_description_needs_item_texts(trained, encoder):
    bare = dataclasses.replace(trained, info={**trained.info, "item_text": False})
    with pytest.raises(ValueError, match="without an item table"):
        bare.recommend_new(description="horror films", encoder=encoder)


def test_a_table_keyed_by_the_wrong_column_is_refused():
    logs = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    texts = pd.Series(["Heat", "Fargo"], index=["1", "2"])
    with pytest.raises(ValueError, match="--item-id-col"):
        index_logs(logs, item_texts=texts)


def test_a_new_history_of_every_item_is_told_so(trained):
    with pytest.raises(ValueError, match="holds every item"):
        trained.recommend_new(history=trained.item_ids)


def test_two_fits_with_one_seed_give_the_same_lists(shop, trained):
    frame, _, reading = read_interactions(shop / "train.csv", COLUMNS)
    items, _ = read_attribute_table(shop / "products.csv", "product_id", ["description"], "item")
    users, _ = read_attribute_table(shop / "customers.csv", "customer_id", None, "user")
    again = fit_on_logs(
        index_logs(frame, items, users), config=HistoryModelConfig(epochs=5), reading=reading
    )
    for user in trained.user_ids[:10]:
        assert again.recommend(user, k=10).items == trained.recommend(user, k=10).items


def test_an_interrupted_fit_resumes_with_the_same_command(shop, trained, tmp_path, monkeypatch):
    import tailrec.history_model as history_module

    out = tmp_path / "model"
    fit = ["fit", "--interactions", str(shop / "train.csv"), "--out", str(out), "--epochs", "5"]
    fit += ["--user-col", "customer_id", "--item-col", "product_id"]
    fit += ["--rating-col", "stars", "--time-col", "ordered_at"]
    fit += ["--items", str(shop / "products.csv"), "--item-text-cols", "description"]
    fit += ["--users", str(shop / "customers.csv")]
    real_save = history_module.save_training_state

    def stop_in_the_final_training(path, epoch, *rest):
        real_save(path, epoch, *rest)
        if path.name == "final.pt" and epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(history_module, "save_training_state", stop_in_the_final_training)
    assert main(fit) == 130
    assert [p.name for p in out.iterdir()] == [".training"]
    monkeypatch.setattr(history_module, "save_training_state", real_save)
    assert main(fit) == 0
    assert not (out / ".training").exists()
    loaded = TrainedRecommender.load(out)
    for user in trained.user_ids[:5]:
        assert loaded.recommend(user, k=10).items == trained.recommend(user, k=10).items
