"""Item and user texts, mean pooling, and the cached text encoder."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tailrec.encoder import TextEncoder, default_cache_dir, mean_pool
from tailrec.splits import make_split
from tailrec.text import (
    age_band,
    item_text,
    item_texts,
    natural_title,
    profile_text,
    user_texts,
    zip_region,
)

# ---------------------------------------------------------------- texts


def test_item_text_examples():
    assert (
        item_text("Toy Story", 1995.0, "Animation|Children's|Comedy")
        == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    )
    assert item_text("unknown", math.nan, "") == "unknown."
    assert item_text("  ", float("nan"), "Drama") == "Untitled film. Genres: Drama."
    assert item_text("Heat", 1995.0, "") == "Heat (1995)."
    assert item_text("Princess Bride, The", 1987.0, "Comedy") == (
        "The Princess Bride (1987). Genres: Comedy."
    )


@pytest.mark.parametrize(
    "title, natural",
    [
        ("Princess Bride, The", "The Princess Bride"),
        ("Fish Called Wanda, A", "A Fish Called Wanda"),
        ("Misérables, Les", "Les Misérables"),
        ("Appartement, L'", "L'Appartement"),
        (
            "City of Lost Children, The (Cité des enfants perdus, La)",
            "The City of Lost Children (Cité des enfants perdus, La)",
        ),
        ("Toy Story", "Toy Story"),
        ("Theory of Flight, The", "The Theory of Flight"),
        ("Them!", "Them!"),
        ("Die Hard", "Die Hard"),
    ],
)
def test_natural_title(title, natural):
    assert natural_title(title) == natural


def test_item_texts_follow_item_index(movielens):
    texts = item_texts(movielens.items.iloc[::-1])  # order of the rows must not matter
    assert len(texts) == movielens.n_items
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert texts[266] == "unknown."


@pytest.mark.parametrize(
    "zip_code, region",
    [
        ("97229", "the Pacific coast"),
        ("01002", "New England and New Jersey"),
        ("55414", "the Upper Midwest"),
        ("T8H1N", "outside the US (a Canadian-style postal code)"),
        ("1234", "an unknown region"),
        ("", "an unknown region"),
        (" 10003 ", "New York and Pennsylvania"),
    ],
)
def test_zip_region(zip_code, region):
    assert zip_region(zip_code) == region


def test_age_bands_at_their_edges():
    assert age_band(7) == "under 18"
    assert age_band(17) == "under 18"
    assert age_band(18) == "18 to 24"
    assert age_band(49) == "45 to 49"
    assert age_band(55) == "50 to 55"
    assert age_band(56) == "56 or older"


def test_profile_text_examples():
    assert (
        profile_text(30, "F", "writer", "94110")
        == "A woman aged 25 to 34, occupation writer, living in the Pacific coast."
    )
    assert (
        profile_text(61, "M", "retired", "V3N4P")
        == "A man aged 56 or older, occupation retired, living in outside the US "
        "(a Canadian-style postal code)."
    )
    assert profile_text(20, "X", "student", "00000").startswith("A person aged 18 to 24")


@pytest.fixture
def tiny_tables():
    users = pd.DataFrame(
        {
            "user_index": [1, 0],
            "user_id": [2, 1],
            "age": [40, 22],
            "gender": ["F", "M"],
            "occupation": ["doctor", "student"],
            "zip_code": ["10001", "T8H1N"],
        }
    )
    items = pd.DataFrame({"item_index": [0, 1, 2, 3], "title": ["Alpha", "Beta", "Gamma", "Delta"]})
    history = pd.DataFrame(
        {
            "user_index": [0, 0, 0, 0],
            "item_index": [0, 1, 2, 3],
            "timestamp": [10, 30, 20, 30],
        }
    )
    return users, items, history


def test_user_texts_most_recent_first_and_capped(tiny_tables):
    users, items, history = tiny_tables
    texts = user_texts(users, items, history, max_titles=3)
    assert len(texts) == 2
    # Newest first; the tie at t=30 goes by item index; the oldest (Alpha) falls off the cap.
    assert texts[0] == (
        "A man aged 18 to 24, occupation student, living in outside the US "
        "(a Canadian-style postal code). Recently rated: Beta; Delta; Gamma."
    )
    # User 1 has no history: profile only.
    assert texts[1] == (
        "A woman aged 35 to 44, occupation doctor, living in New York and Pennsylvania."
    )
    assert user_texts(users, items, None)[0].endswith("postal code).")
    assert "Alpha" in user_texts(users, items, history, max_titles=4)[0]


def test_user_texts_use_only_the_given_history(movielens):
    split = make_split("temporal", movielens.interactions, seed=42)
    texts = user_texts(movielens.users, movielens.items, split.train, max_titles=30)
    title = movielens.items.set_index("item_index")["title"].map(natural_title)
    assert not title.str.contains("; ", regex=False).any()  # so the list can be split safely
    listed = {}
    for user, text in enumerate(texts):
        _, _, tail = text.partition(" Recently rated: ")
        listed[user] = tail[:-1].split("; ") if tail else []

    # Titles that appear only in held-out data never appear in any text.
    train_titles = set(title.loc[split.train["item_index"].unique()])
    held_out_only = set(title.loc[split.test["item_index"].unique()]) - train_titles
    assert held_out_only  # the temporal split has items that no one rated in training
    assert not any(set(titles) & held_out_only for titles in listed.values())

    # Each user's list is exactly their 30 most recent training titles.
    for user in (0, 17, 500, 942):
        mine = split.train[split.train["user_index"] == user]
        mine = mine.sort_values(["timestamp", "item_index"], ascending=[False, True])
        assert listed[user] == title.loc[mine["item_index"].iloc[:30]].tolist()
        own_test = set(title.loc[split.test.loc[split.test["user_index"] == user, "item_index"]])
        assert not (own_test - set(title.loc[mine["item_index"]])) & set(listed[user])


# ---------------------------------------------------------------- mean pooling


def test_mean_pool_ignores_padding():
    hidden = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]],
            [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
        ]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 3.0], [7.0, 8.0]]))
    # A row of nothing but padding gives zeros, not NaN.
    empty = mean_pool(hidden[:1], torch.tensor([[0, 0, 0]]))
    torch.testing.assert_close(empty, torch.zeros(1, 2))


# ---------------------------------------------------------------- the encoder

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "A woman aged 25 to 34, occupation writer, living in the Pacific coast. "
    "Recently rated: Fargo; Contact; Scream; Titanic; The English Patient.",
    "Heat (1995).",
    "Misérables, Les (1995). Genres: Drama, Musical.",
]


def test_encoder_output_shape_and_norm(encoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    assert encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Different texts get different vectors.
    similarity = vectors @ vectors.T
    assert similarity[np.triu_indices(len(TEXTS), 1)].max() < 0.99
    assert encoder.encode([]).shape == (0, 384)


def test_same_text_alone_or_in_a_batch(make_encoder, tmp_path):
    encoder = make_encoder(cache_dir=False, batch_size=3)
    batch = encoder.encode([*TEXTS, "Short."])  # two batches, padded to different lengths
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(alone, batch[i], atol=1e-5)
    repeated = encoder.encode([TEXTS[2], TEXTS[0], TEXTS[2]])
    np.testing.assert_array_equal(repeated[0], repeated[2])


def test_cache_hit_needs_no_model(make_encoder, tmp_path):
    first = make_encoder(cache_dir=tmp_path)
    vectors = first.encode(TEXTS)
    assert len(list(tmp_path.glob("embeddings-*.npz"))) == 1

    second = TextEncoder(device="cpu", cache_dir=tmp_path)
    assert len(second.cache) == len(TEXTS)
    again = second.encode(TEXTS[::-1])
    np.testing.assert_array_equal(again, vectors[::-1])
    assert second._model is None and second._tokenizer is None  # never loaded

    # A different setting (here max_length) has its own cache file.
    other = TextEncoder(device="cpu", cache_dir=tmp_path, max_length=32)
    assert other.setting_key != second.setting_key and len(other.cache) == 0


def test_cache_is_extended_not_replaced(make_encoder, tmp_path):
    first = make_encoder(cache_dir=tmp_path)
    head = first.encode(TEXTS[:2])
    first.encode(TEXTS[2:])
    reread = TextEncoder(device="cpu", cache_dir=tmp_path)
    assert len(reread.cache) == len(TEXTS)
    np.testing.assert_array_equal(reread.encode(TEXTS[:2]), head)
    assert reread._model is None


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAILREC_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    encoder = TextEncoder(device="cpu")
    assert encoder.cache is not None and encoder.cache.path.parent == tmp_path / "here"
    assert TextEncoder(device="cpu", cache_dir=False).cache is None
