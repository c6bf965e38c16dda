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
- A rating that is not a number is dropped; ratings are not rescaled.
- A time may be epoch seconds, epoch milliseconds (values above 10^11) or
  ISO 8601 text, mixed in one file; text without a time zone is read as
  UTC. A time that is none of these is dropped.
- A (user, item) pair that occurs more than once keeps its latest row (by
  time, then by position in the file), so a re-rating replaces the old one.

Every interaction that survives counts as a positive signal for the model;
the rating is kept for reports and for what counts as a purchase.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq")
SEPARATORS = ("\t", ",", ";", "|")
# What an export may write where it meant "no value".
MISSING_WORDS = frozenset({"nan", "na", "n/a", "null", "none", "nil", "-"})
# Epoch values above this are milliseconds (10^11 s is the year 5138).
MILLISECONDS_ABOVE = 1e11

# Column names tried, in order, when the caller names none.
USER_COLUMN_GUESSES = ("user_id", "userId", "user", "customer_id", "customerId", "visitor_id")
ITEM_COLUMN_GUESSES = ("item_id", "itemId", "item", "product_id", "productId", "movie_id", "sku")
RATING_COLUMN_GUESSES = ("rating", "score", "stars")
TIME_COLUMN_GUESSES = ("timestamp", "time", "datetime", "date", "event_time", "created_at")


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


def detect_encoding(raw: bytes) -> str:
    """The encoding of ``raw``: a byte-order mark if there is one, else UTF-8, else Windows-1252.

    Windows-1252 (a superset of Latin-1 for printable text) is what spreadsheet
    exports on Western systems use when they are not UTF-8; Latin-1 is the
    last resort, since it decodes any byte.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        try:
            raw.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


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


def _parse_text(
    text: str, sep: str, header: bool, path: str, columns: list[str] | None = None
) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            dtype=str,
            keep_default_na=False,  # "NA" and "null" stay strings: they may be ids
            skip_blank_lines=True,
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
    header: bool | None = None,
    expected: Sequence[str] = (),
) -> tuple[pd.DataFrame, TableFormat]:
    """Read a CSV-like or Parquet file into a frame of strings, and say how it was read.

    Parameters
    ----------
    path : str or Path
        A ``.parquet``/``.pq`` file, or text with any of the usual separators.
    sep, encoding : str, optional
        Detected when not given (:func:`detect_separator`, :func:`detect_encoding`).
    header : bool, optional
        Whether the first row holds column names. When not given, a header is
        assumed unless every name in ``expected`` is a column number (``"1"``,
        ``"2"``...) and the first row does not hold them all as names.
    expected : sequence of str
        The columns the caller will ask for.

    Returns
    -------
    (pandas.DataFrame, TableFormat)
        Text files are read as strings, with nothing turned into NaN except
        missing fields; Parquet keeps its own types.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; check the path.")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path), TableFormat("parquet")
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"{path} is empty; export the data again.")
    encoding = encoding or detect_encoding(raw)
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise ValueError(
            f"{path} cannot be read as {encoding} ({error}); pass the file's encoding with "
            "--encoding, e.g. --encoding latin-1."
        ) from error
    text = text.lstrip("\ufeff")
    sep = sep or detect_separator(text, str(path))
    if header is None:
        first = next(csv.reader([text.splitlines()[0]], delimiter=sep))
        numbered = bool(expected) and all(name.isdigit() for name in expected)
        header = not (numbered and not set(expected) <= {f.strip() for f in first})
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
    """The column for ``role``: the one given, else the first of ``guesses`` present, else None."""
    if given is not None:
        if given not in frame.columns:
            columns = ", ".join(map(repr, frame.columns[:20]))
            hint = ""
            if all(_looks_like_data(c) for c in frame.columns):
                hint = (
                    " The first row looks like data: if the file has no header, pass "
                    "--no-header and number the columns (e.g. --user-col 1)."
                )
            raise ValueError(
                f"{path} has no {role} column {given!r}; its columns are {columns}. "
                f"Name the right one with {flag}.{hint}"
            )
        return given
    return next((g for g in guesses if g in frame.columns), None)


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
    changed = int((stripped != text).sum())
    if changed:
        report.note(f"{changed} {what} id(s) had spaces around them, removed")
    words = stripped.str.lower().isin(MISSING_WORDS)
    if words.any():
        examples = ", ".join(sorted(map(repr, stripped[words].unique()))[:3])
        report.note(
            f"{int(words.sum())} row(s) have a {what} id such as {examples}, which an export may "
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
    header: bool | None = None,
) -> tuple[pd.DataFrame, LogReport, dict]:
    """Read and check an interaction file (see the module for the rules).

    Returns
    -------
    (pandas.DataFrame, LogReport, dict)
        The kept rows as ``user_id``, ``item_id`` (str) and, when present,
        ``rating`` (float) and ``timestamp`` (float, epoch seconds), in file
        order; the report; and how the file was read (``user``, ``item``,
        ``rating``, ``time`` columns, ``sep``, ``encoding``, ``header``), to
        read another file of the same export the same way.
    """
    frame, fmt = read_table(path, sep, encoding, header, expected=columns.given())
    report = LogReport(str(path))
    report.note(f"read as {fmt.describe()}: {len(frame)} row(s), {frame.shape[1]} column(s)")
    p = str(path)
    user_col = choose_column(frame, columns.user, USER_COLUMN_GUESSES, "user", "--user-col", p)
    item_col = choose_column(frame, columns.item, ITEM_COLUMN_GUESSES, "item", "--item-col", p)
    if user_col is None or item_col is None:
        found = ", ".join(map(repr, frame.columns[:20]))
        raise ValueError(
            f"{path}: could not find the user and item id columns among {found}; name them "
            "with --user-col and --item-col."
        )
    rating_col = choose_column(
        frame, columns.rating, RATING_COLUMN_GUESSES, "rating", "--rating-col", p
    )
    time_col = choose_column(frame, columns.time, TIME_COLUMN_GUESSES, "time", "--time-col", p)
    used = [c for c in (user_col, item_col, rating_col, time_col) if c is not None]
    report.note("columns used: " + ", ".join(f"{c!r}" for c in used))
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
        out["rating"] = pd.to_numeric(frame[rating_col].astype(str).str.strip(), errors="coerce")
        bad = keep & out["rating"].isna()
        report.drop(f"the rating ({rating_col!r}) is missing or not a number", int(bad.sum()))
        keep &= ~bad
    if time_col is not None:
        out["timestamp"], kinds = parse_times(frame[time_col])
        read_as = ", ".join(f"{n} as {kind}" for kind, n in kinds.items() if n)
        report.note(f"times read: {read_as or 'none'}")
        bad = keep & out["timestamp"].isna()
        report.drop(f"the time ({time_col!r}) could not be read as a date", int(bad.sum()))
        keep &= ~bad
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
    frame, fmt = read_table(path, sep, encoding, None, expected=[id_col])
    report = LogReport(str(path))
    report.note(f"read as {fmt.describe()}: {len(frame)} row(s)")
    flag = f"--{what}-id-col"
    id_col = choose_column(frame, id_col, (), f"{what} id", flag, str(path))
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
