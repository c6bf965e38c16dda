"""Plain-text descriptions of items and users, the input of the text encoder.

Items are described by title, year and genres; users by an age band, gender,
occupation, the region of their zip code, and the titles they rated in the
training data (never the validation or test data, which would leak answers).

Every text passes through :func:`clean_text` before the encoder tokenizes it
or hashes it for the embedding cache, so that bad text (control characters,
invisible format characters, lone surrogates) can neither crash the encoder
nor give two cache entries to what is the same text to the model.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

AGE_BANDS = (
    (18, "under 18"),
    (25, "18 to 24"),
    (35, "25 to 34"),
    (45, "35 to 44"),
    (50, "45 to 49"),
    (56, "50 to 55"),
)
OLDEST_BAND = "56 or older"

# First digit of a US ZIP code -> the region it covers (USPS national areas).
ZIP_REGIONS = {
    "0": "New England and New Jersey",
    "1": "New York and Pennsylvania",
    "2": "the Mid-Atlantic and the Carolinas",
    "3": "the Southeast",
    "4": "the Great Lakes and Kentucky",
    "5": "the Upper Midwest",
    "6": "the Central Plains",
    "7": "Texas and the South Central states",
    "8": "the Mountain West",
    "9": "the Pacific coast",
}

GENDERS = {"M": "man", "F": "woman"}

# Zero-width (non-)joiners are format characters that carry meaning: they shape
# Persian and Indic spelling and join emoji sequences, so clean_text keeps them.
KEPT_FORMAT_CHARACTERS = frozenset("\u200c\u200d")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(text: str) -> str:
    """Join surrogate pairs into their character; a lone surrogate becomes U+FFFD."""
    if not _SURROGATE.search(text):
        return text  # the common case costs one regex scan
    # UTF-16 is the one codec in which a pair is valid: encode the halves as they
    # are, then decode, replacing whatever does not form a pair.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _clean_character(char: str) -> str:
    if char in "\t\n":
        return char
    category = unicodedata.category(char)
    if category == "Cc":
        return " "  # \r, \x0b, \x1c... separate words; keep a boundary where they were
    if category == "Cf" and char not in KEPT_FORMAT_CHARACTERS:
        return ""  # invisible inside words: zero-width space, soft hyphen, BOM, bidi marks
    return char


def clean_text(text: str) -> str:
    """The text the encoder reads: safe to tokenize and to encode as UTF-8.

    The rules, applied in this order:

    1. A lone surrogate (``"\\ud800"``, which UTF-8 cannot encode) becomes
       U+FFFD, the replacement character; a valid surrogate pair becomes the
       character it stands for.
    2. A control character (Unicode category Cc: ``\\x00``, ``\\x07``, ``\\r``,
       ``\\x7f``...) becomes a space, except tab and newline, which are kept.
    3. An invisible format character (category Cf: zero-width space U+200B,
       soft hyphen, byte-order mark, bidirectional marks) is removed, except
       the zero-width non-joiner and joiner (U+200C, U+200D).
    4. Leading and trailing whitespace is stripped, so a blank text becomes ``""``.

    Cleaning is idempotent (``clean_text(clean_text(t)) == clean_text(t)``), so
    a text and its cleaned form share one embedding and one cache entry.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    text = _replace_lone_surrogates(text)
    if not text.isprintable():  # fast path: printable text has no Cc or Cf characters
        text = "".join(_clean_character(char) for char in text)
    return text.strip()


# MovieLens files titles as "Princess Bride, The"; the encoder reads natural English better.
TRAILING_ARTICLES = ("The", "A", "An", "La", "Le", "Les", "L'", "Il", "El", "Das", "Der", "Die")


def natural_title(title: str) -> str:
    """Move a trailing article to the front: ``"Princess Bride, The"`` -> ``"The Princess Bride"``.

    Only the part before an alternative title in parentheses is changed, e.g.
    ``"City of Lost Children, The (Cité des enfants perdus, La)"`` becomes
    ``"The City of Lost Children (Cité des enfants perdus, La)"``.
    """
    main, paren, rest = title.partition(" (")
    for article in TRAILING_ARTICLES:
        suffix = f", {article}"
        if main.endswith(suffix):
            joiner = "" if article.endswith("'") else " "
            main = f"{article}{joiner}{main[: -len(suffix)]}"
            break
    return main + paren + rest


def item_text(title: str, year: float, genres: str) -> str:
    """One item as text, e.g. ``"Toy Story (1995). Genres: Animation, Children's, Comedy."``."""
    title = natural_title(title.strip()) or "Untitled film"
    parts = [title if pd.isna(year) else f"{title} ({int(year)})"]
    if genres:
        parts.append("Genres: " + ", ".join(genres.split("|")))
    return ". ".join(parts) + "."


def item_texts(items: pd.DataFrame) -> list[str]:
    """Texts of every item, in ``item_index`` order."""
    ordered = items.sort_values("item_index")
    return [
        item_text(title, year, genres)
        for title, year, genres in zip(
            ordered["title"], ordered["year"], ordered["genres"], strict=True
        )
    ]


def age_band(age: int) -> str:
    for upper, label in AGE_BANDS:
        if age < upper:
            return label
    return OLDEST_BAND


def zip_region(zip_code: str) -> str:
    """The US region of a ZIP code, or a plain description when it is not a US ZIP."""
    zip_code = str(zip_code).strip()
    if len(zip_code) == 5 and zip_code.isdigit():
        return ZIP_REGIONS[zip_code[0]]
    if zip_code[:1].isalpha():
        return "outside the US (a Canadian-style postal code)"
    return "an unknown region"


def profile_text(age: int, gender: str, occupation: str, zip_code: str) -> str:
    """A user's demographic profile as one sentence."""
    who = GENDERS.get(str(gender).upper(), "person")
    return (
        f"A {who} aged {age_band(int(age))}, occupation {occupation}, "
        f"living in {zip_region(zip_code)}."
    )


def profile_texts(users: pd.DataFrame) -> list[str]:
    """The profile sentence of every user, in ``user_index`` order."""
    ordered = users.sort_values("user_index")
    return [
        profile_text(row.age, row.gender, row.occupation, row.zip_code)
        for row in ordered.itertuples(index=False)
    ]


def user_texts(
    users: pd.DataFrame,
    items: pd.DataFrame,
    history: pd.DataFrame | None,
    max_titles: int = 30,
) -> list[str]:
    """Texts of every user, in ``user_index`` order: profile plus recent titles.

    Parameters
    ----------
    users, items : pandas.DataFrame
        The tables of :class:`tailrec.data.InteractionData`.
    history : pandas.DataFrame or None
        Interactions the description may use, normally the training split.
        ``None`` describes users by their profile only.
    max_titles : int
        Keep at most this many titles per user, the most recent first.
    """
    titles = items.set_index("item_index")["title"]
    recent: dict[int, list[str]] = {}
    if history is not None and len(history):
        ordered = history.sort_values(
            ["user_index", "timestamp", "item_index"], ascending=[True, False, True]
        )
        for user, group in ordered.groupby("user_index", sort=False):
            picked = titles.loc[group["item_index"].to_numpy()[:max_titles]]
            recent[int(user)] = [natural_title(t) for t in picked]
    texts = []
    for row in users.sort_values("user_index").itertuples(index=False):
        text = profile_text(row.age, row.gender, row.occupation, row.zip_code)
        watched = recent.get(int(row.user_index))
        if watched:
            text += " Recently rated: " + "; ".join(watched) + "."
        texts.append(text)
    return texts
