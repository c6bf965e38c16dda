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
    clean_text,
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
    assert item_text("", 1995.0, "") == "Untitled film (1995)."
    assert item_text("\t\n ", math.nan, "") == "Untitled film."
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


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("Heat", "Heat"),
        ("  \t\n ", ""),
        ("a\x00b\x07c\rd", "a b c d"),  # control characters: a space each
        ("tab\tand\nnewline", "tab\tand\nnewline"),  # ... but tab and newline stay
        ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),  # invisible: gone
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),
        ("lone \ud800 surrogate\udfff", "lone \ufffd surrogate\ufffd"),
        ("a pair \ud83c\udfac", "a pair \U0001f3ac"),  # a valid pair becomes its character
    ],
)
def test_clean_text_rules(raw, cleaned):
    assert clean_text(raw) == cleaned
    assert clean_text(cleaned) == cleaned  # idempotent
    cleaned.encode("utf-8")  # always encodable, so it can be hashed and tokenized


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


# Words the default tokenizer keeps whole, so n words are n tokens.
ONE_TOKEN_WORDS = ["the", "film", "is", "a", "good", "story", "about", "love", "and", "war"]


def long_text(n_words: int) -> str:
    return " ".join(ONE_TOKEN_WORDS[i % len(ONE_TOKEN_WORDS)] for i in range(n_words))


# float32 noise: a padded batch runs the same sums through differently shaped
# matrix products; on unit vectors the differences stay near 1e-6.
BATCH_ATOL = 1e-5


def test_same_text_alone_or_in_a_batch(make_encoder, tmp_path):
    encoder = make_encoder(cache_dir=False, batch_size=3)
    batch = encoder.encode([*TEXTS, "Short."])  # two batches, padded to different lengths
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(alone, batch[i], atol=BATCH_ATOL)
    repeated = encoder.encode([TEXTS[2], TEXTS[0], TEXTS[2]])
    np.testing.assert_array_equal(repeated[0], repeated[2])

    # One batch mixing a text of 256 tokens with texts of 2 to 5 tokens: the short
    # ones are padded by up to 254 positions, the most the limit allows.
    mixed = ["", "Heat.", long_text(10_000), "Short.", TEXTS[0], "\u7535\u5f71 \U0001f3ac"]
    batch = make_encoder(cache_dir=False, batch_size=len(mixed)).encode(mixed)
    for i, text in enumerate(mixed):
        np.testing.assert_allclose(encoder.encode([text])[0], batch[i], atol=BATCH_ATOL)


def assert_unit_and_finite(vectors: np.ndarray) -> None:
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_blank_texts_encode_to_one_fixed_unit_vector(encoder):
    vectors = encoder.encode(["", " ", "\t\n", "\u200b", "Heat."])
    assert_unit_and_finite(vectors)
    for blank in vectors[1:4]:
        np.testing.assert_array_equal(blank, vectors[0])  # all blank texts are ""
    assert vectors[0] @ vectors[4] < 0.99  # ... and "" is not just any text


def test_long_text_is_truncated_to_max_length(encoder):
    assert encoder.tokenizer.tokenize(long_text(20)) == long_text(20).split()
    keep = encoder.max_length - 2  # [CLS] and [SEP] count towards the limit
    vectors = encoder.encode([long_text(10_000), long_text(keep), long_text(keep - 1)])
    assert_unit_and_finite(vectors)
    np.testing.assert_array_equal(vectors[0], vectors[1])  # the vector of its truncation
    assert not np.array_equal(vectors[1], vectors[2])  # ... and not of a shorter text


def test_non_latin_scripts(encoder):
    texts = [
        "\u0424\u0438\u043b\u044c\u043c \u043e \u043b\u044e\u0431\u0432\u0438.",  # Russian
        "\u041a\u043e\u043c\u0435\u0434\u0438\u044f \u043f\u0440\u043e "
        "\u0432\u043e\u0439\u043d\u0443.",
        "\u0641\u064a\u0644\u0645 \u0639\u0646 \u0627\u0644\u062d\u0628.",  # Arabic
        "\u0641\u064a\u0644\u0645 \u0643\u0648\u0645\u064a\u062f\u064a.",
        "\u4e00\u90e8\u5173\u4e8e\u7231\u7684\u7535\u5f71\u3002",  # Chinese
        "\u6218\u4e89\u7247\u3002",
        "Great film \U0001f3ac\U0001f37f",  # emoji
        "Boring film \U0001f634",
    ]
    vectors = encoder.encode(texts)
    assert_unit_and_finite(vectors)
    similarity = vectors @ vectors.T
    assert similarity[np.triu_indices(len(texts), 1)].max() < 0.999


def test_bad_characters_encode_and_cache(make_encoder, tmp_path):
    bad = [
        "Heat\x00 (1995)\x07.",
        "Toy\r\nStory\t(1995).",
        "Zero\u200bwidth\ufeff title.",
        "Lone \ud800 surrogate.",
        "\udfff",
    ]
    first = make_encoder(cache_dir=tmp_path)
    vectors = first.encode(bad)  # neither the tokenizer nor the cache key crashes
    assert_unit_and_finite(vectors)
    np.testing.assert_array_equal(first.encode([clean_text(t) for t in bad]), vectors)

    reread = TextEncoder(device="cpu", cache_dir=tmp_path)
    assert len(reread.cache) == len(bad)
    np.testing.assert_array_equal(reread.encode(bad), vectors)
    assert reread._model is None  # all served from the cache


class _NetworkUsed(BaseException):
    """Not an Exception, so no retry loop or except clause can swallow it."""


def test_unknown_encoder_fails_fast_without_network(monkeypatch):
    import socket

    import huggingface_hub.constants

    attempts = []

    def refuse(*args: object, **kwargs: object) -> None:
        # huggingface_hub looks up an "agent harness" registry once per process
        # whenever it builds request headers, even with local_files_only, unless
        # HF_HUB_OFFLINE is set; it swallows an OSError. Anything more is a retry loop.
        attempts.append(args[:2])
        if len(attempts) > 1:
            raise _NetworkUsed(f"the encoder tried the network again: {attempts}")
        raise OSError("network refused by the test")

    # Offline mode off, as for a user who never set it; any network use raises instead.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("getaddrinfo", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)

    for name in ("no-such-org/no-such-model", "/no/such/folder"):
        encoder = TextEncoder(name, device="cpu", cache_dir=False)
        with pytest.raises(ValueError, match="neither a folder on this machine") as raised:
            encoder.encode(["Heat."])
        message = str(raised.value)
        assert repr(name) in message and "never downloads" in message
        assert "local folder" in message and "sentence-transformers/all-MiniLM-L6-v2" in message


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
