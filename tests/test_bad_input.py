"""Bad input is refused early with a message that names the problem and the fix."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tailrec.data
from tailrec.cli import main
from tailrec.course import CourseSettings
from tailrec.encoder import EmbeddingCache
from tailrec.evaluation import top_k_items
from tailrec.model import BilinearModel, ModelConfig
from tailrec.training import TrainConfig, train


@pytest.mark.parametrize(
    "param, named",
    [
        ("small=false", "small"),  # a word, not the literal False: it would have meant True
        ("epochs=0", "epochs"),
        ("epochs=2.5", "epochs"),
        ("seed=abc", "seed"),
        ("seed=-1", "seed"),
        ("data_dir=123", "data_dir"),
        ("output_dir=None", "output_dir"),
    ],
)
def test_cli_refuses_bad_parameter_values_before_running(tmp_path, capsys, param, named):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--param", param]) == 2
    message = capsys.readouterr().err
    assert named in message and "Traceback" not in message
    assert not out.exists()


def test_cli_refuses_an_output_dir_that_holds_files(tmp_path, capsys):
    mine = tmp_path / "mywork"
    mine.mkdir()
    (mine / "model.pt").write_bytes(b"a model the user cares about")
    code = main(["run", "--out", str(tmp_path / "run"), "--param", f"output_dir={mine}"])
    assert code == 2
    assert "not empty" in capsys.readouterr().err
    assert (mine / "model.pt").read_bytes() == b"a model the user cares about"


def test_cli_refuses_an_out_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["run", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_cli_names_the_parent_when_given_the_ml100k_folder_itself(movielens_dir, tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "run"), "--data-dir", str(movielens_dir)])
    assert code == 2
    # The CLI resolves links, so compare with the resolved parent.
    assert str(movielens_dir.resolve().parent) in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_reports_a_damaged_data_folder_before_running(movielens_dir, tmp_path, capsys):
    folder = tmp_path / "data" / "ml-100k"
    shutil.copytree(movielens_dir, folder)
    with open(folder / "u.item", "r+b") as handle:
        handle.seek(100)
        handle.write(b"#")
    code = main(["run", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "u.item" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_reports_a_failed_download_as_bad_input(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tailrec.data, "download_file", offline)
    code = main(["run", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "empty")])
    assert code == 2
    assert "Could not download" in capsys.readouterr().err


def test_settings_are_validated():
    with pytest.raises(ValueError, match="epochs"):
        CourseSettings(epochs=True)
    with pytest.raises(ValueError, match="split"):
        CourseSettings(split="by_magic")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=float("nan"))


def _tiny_model() -> BilinearModel:
    return BilinearModel(3, 5, config=ModelConfig(dim=2, use_text=False))


def test_training_needs_a_validation_set():
    train_data = pd.DataFrame({"user_index": [0, 1, 2], "item_index": [0, 1, 2]})
    empty = train_data.iloc[:0]
    with pytest.raises(ValueError, match="validation"):
        train(_tiny_model(), train_data, empty, TrainConfig(epochs=1, progress=False))


def test_nan_scores_are_refused_not_ranked():
    scores = np.array([[0.3, np.nan, 0.1, 0.9]])
    with pytest.raises(ValueError, match="NaN"):
        top_k_items(lambda users: scores[users], np.array([0]), 3)


def test_a_user_listed_twice_gets_the_same_list_twice():
    scores = np.array([[0.3, 0.2, 0.1, 0.9], [0.5, 0.4, 0.6, 0.1]])
    seen = pd.DataFrame({"user_index": [0], "item_index": [3]})
    lists = top_k_items(lambda users: scores[users], np.array([0, 1, 0]), 2, [seen])
    np.testing.assert_array_equal(lists, [[0, 1], [2, 0], [0, 1]])


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_whole_number(k):
    with pytest.raises(ValueError, match="k must be"):
        top_k_items(lambda users: np.zeros((len(users), 4)), np.array([], dtype=np.int64), k)


def test_user_and_item_features_may_have_different_widths():
    model = BilinearModel(2, 3, torch.ones(2, 5), torch.ones(3, 7), ModelConfig(dim=4))
    assert model.score_all(torch.tensor([0, 1])).shape == (2, 3)


def test_features_that_overflow_float32_are_refused():
    huge = np.full((2, 3), 1e300)
    with pytest.raises(ValueError, match="infinite"):
        BilinearModel(2, 2, huge, np.ones((2, 3)), ModelConfig(dim=2))


def test_a_damaged_embedding_cache_is_set_aside_and_rebuilt(tmp_path):
    cache = EmbeddingCache(tmp_path, "setting")
    cache.put_many(["a text"], np.ones((1, 4), dtype=np.float32))
    cache.path.write_bytes(cache.path.read_bytes()[:20])  # truncated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reread = EmbeddingCache(tmp_path, "setting")
    assert len(reread) == 0
    assert any("damaged" in str(w.message) for w in caught)
    assert cache.path.with_suffix(".damaged").is_file()  # kept for inspection, not deleted


def test_encode_refuses_a_bare_string(make_encoder):
    encoder = make_encoder(cache_dir=False)
    with pytest.raises(ValueError, match="list"):
        encoder.encode("Toy Story")


@pytest.mark.parametrize("values", [[1.0, -2.0], [1.0, float("nan")], [0, 0], []])
def test_gini_and_lorenz_refuse_values_that_are_not_shares(values):
    from tailrec.metrics import gini, lorenz_curve

    for measure in (gini, lorenz_curve):
        with pytest.raises(ValueError, match=r"non-negative|positive value"):
            measure(np.array(values))


@pytest.mark.parametrize(
    "kwargs, named",
    [({"test_fraction": 0.0}, "test_fraction"), ({"val_fraction": 1.5}, "val_fraction")],
)
def test_make_split_names_a_bad_fraction(movielens, kwargs, named):
    from tailrec.splits import make_split

    with pytest.raises(ValueError, match=named):
        make_split("random_user", movielens.interactions, **kwargs)


def test_a_temporal_split_needs_times(movielens):
    from tailrec.splits import make_split

    with pytest.raises(ValueError, match="timestamp"):
        make_split("temporal", movielens.interactions.drop(columns="timestamp"))


def test_saving_a_checkpoint_never_overwrites_a_users_json(tmp_path):
    from tailrec.checkpoint import save_checkpoint

    model = BilinearModel(3, 4, config=ModelConfig(dim=2, use_text=False))
    (tmp_path / "model.json").write_text('{"my": "notes"}')
    with pytest.raises(ValueError, match="not a tailrec settings file"):
        save_checkpoint(model, tmp_path / "model.pt")
    assert (tmp_path / "model.json").read_text() == '{"my": "notes"}'
    assert not (tmp_path / "model.pt").exists()
    save_checkpoint(model, tmp_path / "other.pt")
    save_checkpoint(model, tmp_path / "other.pt")  # its own settings file may be replaced
