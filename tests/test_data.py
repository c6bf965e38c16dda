"""Loading MovieLens-100k: counts, indices, decoding, checksums, the offline cache, zips."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tailrec import data as data_module
from tailrec.data import (
    MOVIELENS_SHA256,
    build_interaction_data,
    ensure_movielens,
    load_movielens,
    safe_extract,
    subsample_users,
    verify_movielens,
)


def copy_movielens(source: Path, root: Path) -> Path:
    """A writable copy of the checked files in ``root/ml-100k``."""
    folder = root / "ml-100k"
    folder.mkdir(parents=True)
    for name in MOVIELENS_SHA256:
        shutil.copyfile(source / name, folder / name)
    return folder


# ---------------------------------------------------------------- the loaded tables


def test_counts(movielens):
    assert len(movielens.interactions) == 100_000
    assert movielens.n_users == 943
    assert movielens.n_items == 1682
    assert movielens.interactions["rating"].between(1, 5).all()
    assert not movielens.interactions.duplicated(["user_id", "item_id"]).any()


def test_indices_are_contiguous_and_consistent_with_ids(movielens):
    users, items, ratings = movielens.users, movielens.items, movielens.interactions
    np.testing.assert_array_equal(users["user_index"], np.arange(943))
    np.testing.assert_array_equal(items["item_index"], np.arange(1682))
    # Indexed in sorted order of the original ids.
    assert users["user_id"].is_monotonic_increasing and users["user_id"].is_unique
    assert items["item_id"].is_monotonic_increasing and items["item_id"].is_unique
    assert ratings["user_index"].dtype == np.int64 and ratings["item_index"].dtype == np.int64
    user_of_id = users.set_index("user_id")["user_index"]
    item_of_id = items.set_index("item_id")["item_index"]
    np.testing.assert_array_equal(ratings["user_index"], user_of_id.loc[ratings["user_id"]])
    np.testing.assert_array_equal(ratings["item_index"], item_of_id.loc[ratings["item_id"]])
    assert movielens.user_index[1] == 0 and movielens.item_index[1682] == 1681
    # Every user and item of the tables is rated at least once in MovieLens-100k.
    assert ratings["user_index"].nunique() == 943 and ratings["item_index"].nunique() == 1682


def test_latin1_titles_are_decoded(movielens):
    titles = movielens.items["title"]
    accented = titles[titles.str.contains("é", regex=False)]
    assert len(accented) >= 5
    assert "Misérables, Les" in set(titles)
    # No mojibake from reading Latin-1 bytes as UTF-8 (or the other way round).
    assert not titles.str.contains("Ã|\ufffd", regex=True).any()


def test_title_year_and_genres(movielens):
    toy_story = movielens.items.set_index("item_id").loc[1]
    assert toy_story["title"] == "Toy Story"
    assert toy_story["year"] == 1995
    assert toy_story["genres"] == "Animation|Children's|Comedy"
    # The year was taken out of every title that ended with one.
    assert not movielens.items["title"].str.contains(r"\(\d{4}\)\s*$", regex=True).any()


def test_unknown_item_267(movielens):
    unknown = movielens.items.set_index("item_id").loc[267]
    assert unknown["title"] == "unknown"
    assert np.isnan(unknown["year"])
    assert unknown["genres"] == ""
    assert movielens.items["year"].isna().sum() == 1


def test_zip_codes_are_strings(movielens):
    zips = movielens.users["zip_code"]
    assert all(isinstance(z, str) for z in zips)
    assert (~zips.str.isdigit()).any()  # Canadian-style codes such as T8H1N
    assert "T8H1N" in set(zips)
    # Leading zeros survive (they would be lost if read as numbers).
    assert movielens.users.set_index("user_id").loc[9, "zip_code"] == "01002"


def test_repr_names_the_sizes(movielens):
    assert "n_users=943" in repr(movielens) and "n_items=1682" in repr(movielens)


# ---------------------------------------------------------------- checksums and the cache


def test_checksum_detects_one_changed_byte(movielens_dir, tmp_path):
    folder = copy_movielens(movielens_dir, tmp_path)
    verify_movielens(folder)  # the intact copy passes
    damaged = folder / "u.item"
    content = bytearray(damaged.read_bytes())
    content[1000] ^= 0x01
    damaged.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"u\.item"):
        ensure_movielens(tmp_path)
    with pytest.raises(ValueError, match=r"u\.item"):
        load_movielens(tmp_path)
    # verify=False reads the damaged copy as it is.
    assert ensure_movielens(tmp_path, verify=False) == folder


def test_missing_file_is_reported(movielens_dir, tmp_path):
    folder = copy_movielens(movielens_dir, tmp_path)
    (folder / "u.genre").unlink()
    with pytest.raises(ValueError, match=r"u\.genre"):
        ensure_movielens(tmp_path)


def test_existing_folder_is_used_without_network(movielens_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("ensure_movielens tried to download although the folder exists")

    monkeypatch.setattr(data_module, "download_file", refuse)
    assert ensure_movielens(movielens_dir.parent) == movielens_dir
    assert len(load_movielens(movielens_dir.parent).interactions) == 100_000


def test_data_dir_env_is_the_default(movielens_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("TAILREC_DATA_DIR", str(tmp_path))
    assert data_module.default_data_dir() == tmp_path
    monkeypatch.setenv("TAILREC_DATA_DIR", str(movielens_dir.parent))
    assert ensure_movielens() == movielens_dir


def _fake_download(zip_builder):
    def download_file(url, destination, *args, **kwargs):
        assert url == data_module.MOVIELENS_URL
        zip_builder(Path(destination))

    return download_file


def test_download_extracts_and_verifies(movielens_dir, monkeypatch, tmp_path):
    def build(archive: Path) -> None:
        with zipfile.ZipFile(archive, "w") as bundle:
            for name in MOVIELENS_SHA256:
                bundle.write(movielens_dir / name, f"ml-100k/{name}")

    monkeypatch.setattr(data_module, "download_file", _fake_download(build))
    root = tmp_path / "cache"
    folder = ensure_movielens(root)
    assert folder == root / "ml-100k"
    verify_movielens(folder)
    assert sorted(p.name for p in root.iterdir()) == ["ml-100k"]  # no temporary leftovers


def test_damaged_download_leaves_nothing_behind(movielens_dir, monkeypatch, tmp_path):
    def build(archive: Path) -> None:
        with zipfile.ZipFile(archive, "w") as bundle:
            for name in MOVIELENS_SHA256:
                content = (movielens_dir / name).read_bytes()
                if name == "u.data":
                    content = content[:-10]
                bundle.writestr(f"ml-100k/{name}", content)

    monkeypatch.setattr(data_module, "download_file", _fake_download(build))
    root = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"u\.data"):
        ensure_movielens(root)
    assert not root.exists()  # made for the download, removed with it


def test_failed_download_is_a_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_module, "download_file", offline)
    with pytest.raises(ValueError, match=r"Could not download.*did not exist"):
        ensure_movielens(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="Could not download") as error:
        ensure_movielens(tmp_path / "mine")
    assert "did not exist" not in str(error.value)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


def test_a_damaged_file_read_without_verification_is_named(movielens_dir, tmp_path):
    copy = tmp_path / "ml-100k"
    shutil.copytree(movielens_dir, copy)
    (copy / "u.data").write_text("196\t242\tthree\t881250949\n")
    with pytest.raises(ValueError, match=r"u\.data could not be read.*verify=True"):
        load_movielens(tmp_path, verify=False)


# ---------------------------------------------------------------- safe_extract


def test_safe_extract_refuses_path_traversal(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ok.txt", "fine")
        bundle.writestr("../evil.txt", "gotcha")
    target = tmp_path / "out"
    with pytest.raises(ValueError, match=r"evil\.txt"):
        safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "ok.txt").exists()  # nothing is extracted from a bad archive


def test_safe_extract_refuses_absolute_and_sibling_paths(tmp_path):
    for member in (str(tmp_path / "abs.txt"), "../out-sibling/x.txt"):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr(member, "x")
        with pytest.raises(ValueError):
            safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "abs.txt").exists()
    assert not (tmp_path / "out-sibling").exists()


def test_safe_extract_extracts_a_normal_archive(tmp_path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ml-100k/u.info", "943 users\n")
        bundle.writestr("ml-100k/sub/deeper.txt", "deep")
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "ml-100k" / "u.info").read_text() == "943 users\n"
    assert (tmp_path / "out" / "ml-100k" / "sub" / "deeper.txt").read_text() == "deep"


def test_safe_extract_rejects_a_corrupt_archive(tmp_path):
    archive = tmp_path / "corrupt.zip"
    archive.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError, match="not a valid zip"):
        safe_extract(archive, tmp_path / "out")


# ---------------------------------------------------------------- building and subsampling


def test_build_interaction_data_rejects_unknown_ids():
    users = pd.DataFrame({"user_id": [5, 2]})
    items = pd.DataFrame({"item_id": [30, 10]})
    ok = build_interaction_data(
        pd.DataFrame({"user_id": [5, 2], "item_id": [10, 30]}), items, users
    )
    assert ok.interactions["user_index"].tolist() == [1, 0]
    assert ok.interactions["item_index"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="missing"):
        build_interaction_data(pd.DataFrame({"user_id": [7], "item_id": [10]}), items, users)


def test_subsample_users_keeps_n_users_and_reindexes(movielens):
    small = subsample_users(movielens, 60, seed=3)
    assert small.n_users == 60
    np.testing.assert_array_equal(small.users["user_index"], np.arange(60))
    np.testing.assert_array_equal(small.items["item_index"], np.arange(small.n_items))
    ratings = small.interactions
    assert set(ratings["user_index"]) == set(range(60))
    assert set(ratings["item_index"]) == set(range(small.n_items))  # only items still rated
    # Exactly the kept users' ratings, unchanged.
    kept = set(small.users["user_id"])
    original = movielens.interactions[movielens.interactions["user_id"].isin(kept)]
    columns = ["user_id", "item_id", "rating", "timestamp"]
    pd.testing.assert_frame_equal(
        ratings[columns].sort_values(columns).reset_index(drop=True),
        original[columns].sort_values(columns).reset_index(drop=True),
    )
    # The new indices still point at the right ids.
    np.testing.assert_array_equal(
        small.users.set_index("user_index").loc[ratings["user_index"], "user_id"],
        ratings["user_id"],
    )
    np.testing.assert_array_equal(
        small.items.set_index("item_index").loc[ratings["item_index"], "item_id"],
        ratings["item_id"],
    )
    # Seeded: the same seed keeps the same users, another seed other users.
    assert set(subsample_users(movielens, 60, seed=3).users["user_id"]) == kept
    assert set(subsample_users(movielens, 60, seed=4).users["user_id"]) != kept
    assert subsample_users(movielens, 5000, seed=3) is movielens
