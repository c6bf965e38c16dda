"""Read a practitioner's own interaction logs: CSV or Parquet, any separator, any ids.

An export from a shop, a news site or a forum rarely looks like MovieLens.
:func:`read_interactions` takes a file of interactions (a user id, an item id
and, optionally, a rating and a time), finds the separator and the encoding
when they are not given, maps the column names, and checks every row. It
never guesses silently: what it found and what it dropped, and why, is in
the :class:`LogReport` it returns, printed by ``tailrec fit`` as one block.

The rules, in the order they are applied:

- Ids are strings, end to end: ``"007"`` and ``"7"`` are different users, and
  every id comes back unchanged in recommendations. Spaces around an id are
  removed (and counted). Ids such as ``"NA"`` or ``"null"`` are kept as ids
  but reported, since an export may have meant a missing value.
- A row without a user or an item id is dropped.
- A rating that is not a finite number is left empty and the interaction
  kept (the model does not need it); "4,5" reads as 4.5 in a file that is
  not comma-separated. Ratings are not rescaled.
- A time may be epoch seconds, epoch milliseconds (values above 10^11) or
  ISO 8601 text, mixed in one file; text without a time zone is read as
  UTC. A time that is none of these is dropped; times before 1971 or in
  the future are kept and reported, since they usually mean a wrong unit.
- The encoding is detected (a byte-order mark, UTF-8, else Windows-1252); a
  file that is UTF-8 but for a few lines is refused, naming the first bad
  line, since reading it any other way would garble its UTF-8 ids.
- A (user, item) pair that occurs more than once keeps its latest row (by
  time, then by position in the file), so a re-rating replaces the old one.

Every interaction that survives counts as a positive signal for the model;
the rating is kept for reports and for what counts as a purchase.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
PARQUET_MAGIC = b"PAR1"
SEPARATORS = ("\t", ",", ";", "|")
# What an export may write where it meant "no value".
MISSING_WORDS = frozenset({"nan", "na", "n/a", "null", "none", "nil", "-"})
# A byte sequence that only UTF-8 text holds: a lead byte and its continuation bytes.
UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")
# Epoch values above this are milliseconds (10^11 s is the year 5138).
MILLISECONDS_ABOVE = 1e11
YEAR_1971 = 31_536_000.0

# Column names tried, in order, when the caller names none.
# Compared without case, spaces, "_" or "-": "User ID", "userId" and "USER_ID" all match "userid".
USER_COLUMN_GUESSES = ("userid", "user", "customerid", "customer", "visitorid", "clientid")
ITEM_COLUMN_GUESSES = ("itemid", "item", "productid", "product", "movieid", "articleid", "sku")
RATING_COLUMN_GUESSES = ("rating", "score", "stars")
TIME_COLUMN_GUESSES = (
    "timestamp",
    "time",
    "datetime",
    "date",
    "eventtime",
    "createdat",
    "orderedat",
    "orderdate",
)


@dataclass
class LogReport:
    """What was read from one file, and every row dropped or changed, with the reason."""

    path: str
    lines: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(count)

    def text(self) -> str:
        """The report as a readable block of lines."""
        out = [f"{self.path}:"] + [f"  {line}" for line in self.lines]
        if self.dropped:
            total = sum(self.dropped.values())
            out.append(f"  dropped {total} row(s):")
            out += [f"    {count:>8}  {reason}" for reason, count in self.dropped.items()]
        else:
            out.append("  dropped no rows")
        return "\n".join(out)


@dataclass(frozen=True)
class TableFormat:
    """How a file was read: its format, separator, encoding, and whether it has a header."""

    kind: str  # "csv" or "parquet"
    sep: str | None = None
    encoding: str | None = None
    header: bool = True

    def describe(self) -> str:
        if self.kind == "parquet":
            return "Parquet"
        header = "a header row" if self.header else "no header row"
        return f"text, separator {self.sep!r}, encoding {self.encoding}, {header}"


def detect_encoding(raw: bytes, path: str = "the file") -> str:
    """The encoding of ``raw``: a byte-order mark if there is one, else UTF-8, else Windows-1252.

    Windows-1252 (a superset of Latin-1 for printable text) is what spreadsheet
    exports on Western systems use when they are not UTF-8; Latin-1 is the
    last resort, since it decodes any byte. A file that is UTF-8 except for a
    few lines is refused rather than read as Windows-1252, which would
    garble every UTF-8 character (and id) in it.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if raw[:1000].count(b"\x00") > len(raw[:1000]) // 4:
        order = "be" if raw[:1] == b"\x00" else "le"
        raise ValueError(
            f"{path} looks like UTF-16 without a byte-order mark (every other byte is zero); "
            f"pass --encoding utf-16-{order}."
        )
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if UTF8_MULTIBYTE.search(raw):
            line = raw[: error.start].count(b"\n") + 1
            raise ValueError(
                f"{path} mixes encodings: it holds UTF-8 characters, but line {line} is not "
                "UTF-8. Fix that line (re-export the file as UTF-8), or pass --encoding if the "
                "whole file is in one other encoding."
            ) from error
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def looks_like_misread_utf8(raw: bytes, encoding: str) -> bool:
    """True when ``raw`` is valid UTF-8 with non-ASCII text but is being read as ``encoding``."""
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig"):
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(UTF8_MULTIBYTE.search(raw))


def detect_separator(text: str, path: str) -> str:
    """The separator that splits the first lines of ``text`` into the same number of fields.

    Quoted fields are respected, so a comma inside a quoted title does not
    count. When several separators fit, the one giving the most fields wins.
    """
    sample = [line for line in text.splitlines()[:50] if line.strip()]
    # The last line may be truncated; judge by the complete ones when there are any.
    if len(sample) > 2:
        sample = sample[:-1]
    best, best_fields = None, 1
    for sep in SEPARATORS:
        counts = {len(row) for row in csv.reader(sample, delimiter=sep)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    if best is None:
        raise ValueError(
            f"{path}: could not tell the separator (tried tab, comma, semicolon and |; none "
            "splits the first lines into the same number of fields). Pass it with --sep."
        )
    return best


def _parse_text(text: str, sep: str, header: bool, path: str) -> pd.DataFrame:
    # A separator of several characters (MovieLens-1M's "::") needs the python
    # engine and a regular expression; such files cannot quote fields.
    options = {"sep": sep} if len(sep) == 1 else {"sep": re.escape(sep), "engine": "python"}
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,  # "NA" and "null" stay strings: they may be ids
            skip_blank_lines=True,
            **options,
        )
    except pd.errors.ParserError as error:
        raise ValueError(
            f"{path}: {str(error).strip()}. A field probably holds the separator {sep!r} "
            "without quotes, or the separator is wrong; quote such fields or pass --sep."
        ) from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path} is empty; export the data again.") from error
    if not header:
        frame.columns = [str(n + 1) for n in range(frame.shape[1])]
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_table(
    path: str | Path,
    sep: str | None = None,
    encoding: str | None = None,
    header: bool = True,
) -> tuple[pd.DataFrame, TableFormat]:
    """Read a CSV-like or Parquet file into a frame of strings, and say how it was read.

    Parameters
    ----------
    path : str or Path
        A ``.parquet``/``.pq`` file, or text with any of the usual separators.
    sep, encoding : str, optional
        Detected when not given (:func:`detect_separator`, :func:`detect_encoding`).
    header : bool
        Whether the first row holds column names; without one, columns are
        named by their position from 1 (``"1"``, ``"2"``...).

    Returns
    -------
    (pandas.DataFrame, TableFormat)
        Text files are read as strings, with nothing turned into NaN except
        missing fields; Parquet keeps its own types.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; check the path.")
    raw = path.read_bytes()
    if path.suffix.lower() in PARQUET_SUFFIXES or raw.startswith(PARQUET_MAGIC):
        return _read_parquet(path), TableFormat("parquet")
    if not raw.strip():
        raise ValueError(f"{path} is empty; export the data again.")
    given_encoding = encoding
    encoding = encoding or detect_encoding(raw, str(path))
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise ValueError(
            f"{path} cannot be read as {encoding} ({error}); pass the file's encoding with "
            "--encoding, e.g. --encoding latin-1."
        ) from error
    if given_encoding and looks_like_misread_utf8(raw, given_encoding):
        raise ValueError(
            f"{path} is UTF-8 with non-ASCII text, which --encoding {given_encoding} would "
            "garble (é would read as Ã©); leave --encoding out for this file."
        )
    text = text.lstrip("\ufeff")
    sep = sep or detect_separator(text, str(path))
    frame = _parse_text(text, sep, header, str(path))
    return frame, TableFormat("csv", sep, encoding, header)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as error:
        raise ValueError(
            f"Reading {path} needs pyarrow, which is not installed; run pip install pyarrow."
        ) from error
    except Exception as error:  # pyarrow raises its own types for damaged files
        raise ValueError(
            f"{path} could not be read as Parquet ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); export it again, or as CSV."
        ) from error


def choose_column(
    frame: pd.DataFrame, given: str | None, guesses: Sequence[str], role: str, flag: str, path: str
) -> str | None:
    """The column for ``role``: the one given, else the first of ``guesses`` present, else None.

    Guesses are matched without case and without spaces, "_" and "-".
    """
    if given is not None:
        if given not in frame.columns:
            raise ValueError(_missing_column(frame, given, role, flag, path))
        return given
    simple = {_simple(c): c for c in reversed(frame.columns)}  # the first wins on a tie
    return next((simple[g] for g in guesses if g in simple), None)


def _simple(name: object) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _missing_column(frame: pd.DataFrame, given: str, role: str, flag: str, path: str) -> str:
    columns = ", ".join(map(repr, frame.columns[:20]))
    message = f"{path} has no {role} column {given!r}; its columns are {columns}."
    numbered = [str(c) for c in frame.columns] == [str(n + 1) for n in range(frame.shape[1])]
    if numbered:
        return f"{message} Without a header, columns are numbered from 1; name one with {flag}."
    if given.isdigit() or all(_looks_like_data(c) for c in frame.columns):
        return (
            f"{message} If the file has no header row, pass --no-header and number the "
            f"columns from 1 (e.g. {flag} 1); otherwise name the right one with {flag}."
        )
    return f"{message} Name the right one with {flag}."


def _looks_like_data(name: str) -> bool:
    try:
        float(name)
        return True
    except ValueError:
        return False


def id_strings(values: pd.Series, what: str, report: LogReport) -> pd.Series:
    """Ids as strings, stripped of surrounding spaces; Parquet numbers printed without '.0'."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():
            report.note(f"{what} ids were stored as decimal numbers; read 7.0 as '7'")
            values = values.astype("Int64")
    missing = values.isna()
    text = values.astype(str).where(~missing, "")
    stripped = text.str.strip()
    changed = stripped != text
    if changed.any():
        report.note(
            f"{text[changed].nunique()} {what} id(s) had spaces around them, removed "
            f"({int(changed.sum())} row(s))"
        )
    words = stripped.str.lower().isin(MISSING_WORDS)
    if words.any():
        examples = ", ".join(sorted(map(repr, stripped[words].unique()))[:3])
        report.note(
            f"{int(words.sum())} row(s) have {what} ids such as {examples}, which an export may "
            "use for a missing value; kept as ids"
        )
    return stripped


def parse_times(values: pd.Series) -> tuple[pd.Series, dict[str, int]]:
    """Epoch seconds (float) from epoch seconds, epoch milliseconds or ISO text, mixed.

    Returns the seconds (NaN where a value could not be read) and how many
    values were read each way.
    """
    text = values.astype(str).str.strip().where(values.notna(), "")
    numbers = pd.to_numeric(text, errors="coerce")
    is_number = numbers.notna()
    millis = is_number & (numbers.abs() > MILLISECONDS_ABOVE)
    seconds = numbers.where(~millis, numbers / 1000.0)
    dates = pd.to_datetime(text[~is_number], format="ISO8601", utc=True, errors="coerce")
    epoch = pd.Timestamp(0, tz="UTC")
    from_text = (dates - epoch) / pd.Timedelta(seconds=1)
    seconds = seconds.astype("float64")
    seconds[~is_number] = from_text.astype("float64")
    kinds = {
        "epoch seconds": int((is_number & ~millis).sum()),
        "epoch milliseconds": int(millis.sum()),
        "ISO text": int(from_text.notna().sum()),
    }
    return seconds, kinds


@dataclass(frozen=True)
class Columns:
    """Which columns of an interaction file hold what; None means find it by its usual names."""

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    time: str | None = None

    def given(self) -> list[str]:
        return [c for c in (self.user, self.item, self.rating, self.time) if c is not None]


def read_interactions(
    path: str | Path,
    columns: Columns = Columns(),
    sep: str | None = None,
    encoding: str | None = None,
    header: bool = True,
    guess_optional: bool = True,
    rating_range: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, LogReport, dict]:
    """Read and check an interaction file (see the module for the rules).

    ``guess_optional`` False reads a rating or time column only when named in
    ``columns`` (an evaluation needs neither). ``rating_range`` (lowest,
    highest) marks ratings outside the scale: they are reported and left
    empty, and the interactions kept.

    Returns
    -------
    (pandas.DataFrame, LogReport, dict)
        The kept rows as ``user_id``, ``item_id`` (str) and, when present,
        ``rating`` (float, NaN where the file has none) and ``timestamp``
        (float, epoch seconds), in file order; the report; and how the file
        was read (``user``, ``item``, ``rating``, ``time`` columns, ``sep``,
        ``encoding``, ``header``).
    """
    frame, fmt = read_table(path, sep, encoding, header)
    report = LogReport(str(path))
    report.note(f"read as {fmt.describe()}: {len(frame)} row(s), {frame.shape[1]} column(s)")
    used = _choose_columns(frame, columns, str(path), guess_optional)
    user_col, item_col, rating_col, time_col = used
    report.note("columns used: " + ", ".join(f"{c!r}" for c in used if c is not None))
    unused = [c for c in frame.columns if c not in used]
    if unused:
        report.note("columns ignored: " + ", ".join(f"{c!r}" for c in unused[:20]))

    out = pd.DataFrame(
        {
            "user_id": id_strings(frame[user_col], "user", report),
            "item_id": id_strings(frame[item_col], "item", report),
        }
    )
    keep = (out["user_id"] != "") & (out["item_id"] != "")
    report.drop("no user id or no item id", int((~keep).sum()))
    if rating_col is not None:
        ratings = parse_ratings(frame[rating_col], decimal_comma=fmt.sep != ",")
        bad = keep & ratings.isna()
        if bad.any():
            report.note(
                f"{int(bad.sum())} rating(s) in {rating_col!r} are missing or not numbers; "
                "those interactions are kept, without a rating"
            )
        if rating_range is not None:
            low, high = rating_range
            outside = keep & ((ratings < low) | (ratings > high))
            if outside.any():
                examples = ", ".join(f"{v:g}" for v in ratings[outside].unique()[:3])
                report.note(
                    f"{int(outside.sum())} rating(s) lie outside {low:g} to {high:g} (e.g. "
                    f"{examples}); those interactions are kept, without a rating"
                )
                ratings = ratings.mask(outside)
        out["rating"] = ratings
    if time_col is not None:
        out["timestamp"], kinds = parse_times(frame[time_col])
        read_as = ", ".join(f"{n} as {kind}" for kind, n in kinds.items() if n)
        report.note(f"times read: {read_as or 'none'}")
        bad = keep & out["timestamp"].isna()
        report.drop(f"the time ({time_col!r}) could not be read as a date", int(bad.sum()))
        keep &= ~bad
        _note_odd_times(out["timestamp"][keep], report)
    out = out[keep]
    out = _latest_per_pair(out, report)
    _describe(out, report)
    reading = {
        "user": user_col,
        "item": item_col,
        "rating": rating_col,
        "time": time_col,
        "sep": fmt.sep,
        "encoding": fmt.encoding,
        "header": fmt.header,
    }
    return out.reset_index(drop=True), report, reading


def _choose_columns(
    frame: pd.DataFrame, columns: Columns, path: str, guess_optional: bool
) -> tuple[str, str, str | None, str | None]:
    user = choose_column(frame, columns.user, USER_COLUMN_GUESSES, "user", "--user-col", path)
    item = choose_column(frame, columns.item, ITEM_COLUMN_GUESSES, "item", "--item-col", path)
    if user is None or item is None:
        found = ", ".join(map(repr, frame.columns[:20]))
        missing = " and ".join(
            f"the {role} id column (name it with --{role}-col)"
            for role, col in (("user", user), ("item", item))
            if col is None
        )
        raise ValueError(f"{path}: could not find {missing} among the columns {found}.")
    rating_guesses = RATING_COLUMN_GUESSES if guess_optional else ()
    time_guesses = TIME_COLUMN_GUESSES if guess_optional else ()
    rating = choose_column(frame, columns.rating, rating_guesses, "rating", "--rating-col", path)
    time_col = choose_column(frame, columns.time, time_guesses, "time", "--time-col", path)
    chosen = [c for c in (user, item, rating, time_col) if c is not None]
    if len(set(chosen)) < len(chosen):
        raise ValueError(
            f"{path}: one column is used for two roles (user {user!r}, item {item!r}, rating "
            f"{rating!r}, time {time_col!r}); give each role its own column."
        )
    return user, item, rating, time_col


def parse_ratings(values: pd.Series, decimal_comma: bool = True) -> pd.Series:
    """Ratings as floats; NaN for anything that is not a finite number.

    With ``decimal_comma`` (a file not separated by commas), "4,5" reads as 4.5,
    as European spreadsheets write it.
    """
    text = values.astype(str).str.strip().where(values.notna(), "")
    if decimal_comma:
        text = text.str.replace(r"^(-?\d+),(\d+)$", r"\1.\2", regex=True)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


def _note_odd_times(seconds: pd.Series, report: LogReport) -> None:
    """Report times before 1971 or after tomorrow: usually a wrong unit or a truncated value."""
    odd = (seconds < YEAR_1971) | (seconds > pd.Timestamp.now(tz="UTC").timestamp() + 86400)
    if odd.any():
        report.note(
            f"{int(odd.sum())} time(s) fall before 1971 or in the future; check the time "
            "column's unit (epoch seconds, milliseconds, or ISO text such as 2023-11-14)"
        )


def _latest_per_pair(frame: pd.DataFrame, report: LogReport) -> pd.DataFrame:
    """One row per (user, item): the latest by time, then by position in the file."""
    order = frame.assign(_row=np.arange(len(frame)))
    keys = ["timestamp", "_row"] if "timestamp" in frame else ["_row"]
    order = order.sort_values(keys, kind="stable")
    latest = order.drop_duplicates(["user_id", "item_id"], keep="last")
    reason = "a later row has the same user and item (the latest is kept)"
    report.drop(reason, len(frame) - len(latest))
    return latest.sort_values("_row").drop(columns="_row")


def _describe(frame: pd.DataFrame, report: LogReport) -> None:
    report.note(
        f"kept {len(frame)} interaction(s) of {frame['user_id'].nunique()} user(s) "
        f"with {frame['item_id'].nunique()} item(s)"
    )
    if "rating" in frame and len(frame):
        report.note(f"ratings from {frame['rating'].min():g} to {frame['rating'].max():g}")
    if "timestamp" in frame and len(frame):
        first, last = pd.to_datetime(frame["timestamp"].agg(["min", "max"]), unit="s", utc=True)
        report.note(f"times from {first:%Y-%m-%d} to {last:%Y-%m-%d}")


def read_attribute_table(
    path: str | Path,
    id_col: str,
    text_cols: Sequence[str] | None,
    what: str,
    sep: str | None = None,
    encoding: str | None = None,
    header: bool = True,
) -> tuple[pd.Series, LogReport]:
    """Text per id from an item or user table: the chosen columns joined as "name: value".

    Parameters
    ----------
    path : str or Path
    id_col : str
        The key column, matched against the interaction file's ids as strings.
    text_cols : sequence of str, optional
        The columns that describe a row; all other columns when not given.
    what : str
        "item" or "user", for messages.

    Returns
    -------
    (pandas.Series, LogReport)
        The text of each id (index: id as str). A single column gives its
        value alone; several give "column: value" parts joined by ". ", so
        the encoder sees what each value means. Empty values are left out.
    """
    frame, fmt = read_table(path, sep, encoding, header)
    report = LogReport(str(path))
    report.note(f"read as {fmt.describe()}: {len(frame)} row(s)")
    id_col = choose_column(frame, id_col, (), f"{what} id", f"--{what}-id-col", str(path))
    if text_cols:
        for col in text_cols:
            choose_column(frame, col, (), f"{what} text", f"--{what}-text-cols", str(path))
    cols = list(text_cols) if text_cols else [c for c in frame.columns if c != id_col]
    if not cols:
        raise ValueError(f"{path} has only the id column {id_col!r}; it holds no text to use.")
    report.note("text from columns: " + ", ".join(map(repr, cols)))
    ids = id_strings(frame[id_col], what, report)
    values = frame[cols].astype(str).where(frame[cols].notna(), "")
    values = values.apply(lambda col: col.str.strip())
    if len(cols) == 1:
        texts = values[cols[0]]
    else:
        texts = values.apply(
            lambda row: ". ".join(f"{c}: {v}" for c, v in zip(cols, row, strict=True) if v),
            axis=1,
        )
    texts.index = ids
    empty_id = texts.index == ""
    report.drop(f"no {what} id", int(empty_id.sum()))
    texts = texts[~empty_id]
    duplicated = texts.index.duplicated(keep="first")
    reason = f"the {what} id occurs earlier in the table (the first is kept)"
    report.drop(reason, int(duplicated.sum()))
    texts = texts[~duplicated]
    report.note(f"kept {len(texts)} {what}(s), {int((texts == '').sum())} of them without text")
    return texts, report
