"""MovieLens-100k: download once, verify, cache, and load into one container.

The MovieLens terms forbid redistribution, so the files never ship with tailrec.
:func:`load_movielens` looks for an extracted ``ml-100k/`` folder in the data
directory and downloads the official archive only when the folder is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
MOVIELENS_FOLDER = "ml-100k"

# SHA-256 of the files as GroupLens distributes them.
MOVIELENS_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
}

DATA_DIR_ENV = "TAILREC_DATA_DIR"


@dataclass(frozen=True)
class InteractionData:
    """Interactions with their user and item tables and the id <-> index maps.

    Attributes
    ----------
    interactions : pandas.DataFrame
        One row per rating: ``user_id``, ``item_id`` (original ids), ``rating``
        (int), ``timestamp`` (int, unix seconds), and ``user_index``,
        ``item_index`` (int64, contiguous from 0) used by every model.
    items : pandas.DataFrame
        One row per item in index order: ``item_index``, ``item_id``, ``title``
        (year removed), ``year`` (float, NaN when unknown), ``genres`` (a
        ``"|"``-joined string, empty when none).
    users : pandas.DataFrame
        One row per user in index order: ``user_index``, ``user_id``, ``age``,
        ``gender``, ``occupation``, ``zip_code`` (a string: some are not numeric).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def user_index(self) -> dict[int, int]:
        """Map from original user id to contiguous index."""
        return dict(zip(self.users["user_id"], self.users["user_index"], strict=True))

    @property
    def item_index(self) -> dict[int, int]:
        """Map from original item id to contiguous index."""
        return dict(zip(self.items["item_id"], self.items["item_index"], strict=True))

    def __repr__(self) -> str:
        return (
            f"InteractionData(n_interactions={len(self.interactions)}, "
            f"n_users={self.n_users}, n_items={self.n_items})"
        )


def default_data_dir() -> Path:
    """The data directory used when none is given.

    ``$TAILREC_DATA_DIR`` when set; otherwise the ``data/`` folder of a source
    checkout; otherwise ``~/.cache/tailrec/data``.
    """
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    checkout_data = Path(__file__).resolve().parent.parent / "data"
    if (checkout_data / "README.md").is_file():
        return checkout_data
    return Path.home() / ".cache" / "tailrec" / "data"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_movielens(folder: Path) -> None:
    """Raise ``ValueError`` unless every checked file in ``folder`` has its published SHA-256."""
    for name, expected in MOVIELENS_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise ValueError(
                f"{path} is missing. Delete the folder {folder} so that tailrec downloads "
                "the archive again, or put the complete ml-100k folder there."
            )
        actual = sha256_of(path)
        if actual != expected:
            raise ValueError(
                f"{path} has SHA-256 {actual}, expected {expected}: the file is damaged or "
                f"not the GroupLens release. Delete {folder} so that tailrec downloads it "
                "again (or, in Python, pass verify=False to use it as it is)."
            )


def ensure_movielens(data_dir: str | Path | None = None, verify: bool = True) -> Path:
    """Return the path of the extracted ``ml-100k`` folder, downloading it if needed.

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder that holds (or will hold) ``ml-100k/``; see :func:`default_data_dir`.
    verify : bool
        Check the SHA-256 of the data files, also for a folder that was already there.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / MOVIELENS_FOLDER
    if (root / "u.data").is_file() and not folder.is_dir():
        raise ValueError(
            f"{root} looks like the ml-100k folder itself; pass the folder that contains it, "
            f"{root.parent}."
        )
    if folder.is_dir():
        logger.info("Reading MovieLens-100k from the cache at %s", folder)
    else:
        logger.info("Downloading MovieLens-100k from %s into %s", MOVIELENS_URL, root)
        _download_and_extract(root)
    if verify:
        verify_movielens(folder)
    return folder


def _download_and_extract(root: Path) -> None:
    """Download the archive, check it, and move the folder into place in one step.

    Everything happens in a temporary folder beside the target, so a failed
    download or a bad checksum leaves nothing half-written in the cache.
    """
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            archive = Path(tmp) / "ml-100k.zip"
            try:
                download_file(MOVIELENS_URL, archive)
            except OSError as error:
                new = (
                    f" ({root} did not exist: check the path if you meant a copy you have)"
                    if created
                    else ""
                )
                raise ValueError(
                    f"Could not download {MOVIELENS_URL} ({error}){new}. Download it by hand "
                    f"and extract it into {root}, or point the data directory (--data-dir, "
                    f"data_dir or {DATA_DIR_ENV}) at a folder that holds ml-100k/."
                ) from error
            extract_dir = Path(tmp) / "extracted"
            safe_extract(archive, extract_dir)
            verify_movielens(extract_dir / MOVIELENS_FOLDER)
            shutil.move(str(extract_dir / MOVIELENS_FOLDER), root / MOVIELENS_FOLDER)
    except BaseException:
        # A folder made only for this download is not left behind, empty, on failure.
        if created and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise


def download_file(url: str, destination: Path, timeout: float = 60.0) -> None:
    """Save ``url`` to ``destination``; raises ``OSError`` when the network fails.

    The timeout applies to each network operation, so a connection that drops
    packets fails instead of hanging.
    """
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out)


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip archive, refusing members that would land outside ``target``."""
    target = target.resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                destination = (target / member).resolve()
                if not destination.is_relative_to(target):
                    raise ValueError(
                        f"The archive {archive} has a member {member!r} that points outside "
                        "the target folder; refusing to extract it. Download the archive again."
                    )
            bundle.extractall(target)
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"{archive} is not a valid zip archive ({error}). Delete it and download again."
        ) from error


def load_movielens(data_dir: str | Path | None = None, verify: bool = True) -> InteractionData:
    """Load MovieLens-100k (100,000 ratings, 943 users, 1,682 items).

    Parameters
    ----------
    data_dir : str or Path, optional
        Folder holding ``ml-100k/``. Defaults to :func:`default_data_dir`.
    verify : bool
        Check the published SHA-256 of the files before reading them.

    Returns
    -------
    InteractionData
        Users and items are indexed in the order of their original ids.
    """
    folder = ensure_movielens(data_dir, verify=verify)
    with _naming_the_file(folder / "u.data"):
        ratings = pd.read_csv(
            folder / "u.data",
            sep="\t",
            names=["user_id", "item_id", "rating", "timestamp"],
            dtype="int64",
        )
    with _naming_the_file(folder / "u.genre"):
        genre_names = pd.read_csv(folder / "u.genre", sep="|", names=["genre", "flag"])["genre"]
    genre_names = genre_names.dropna().tolist()
    with _naming_the_file(folder / "u.item"):
        raw_items = pd.read_csv(
            folder / "u.item",
            sep="|",
            encoding="latin-1",
            header=None,
            names=["item_id", "title", "release_date", "video_release_date", "url", *genre_names],
        )
    with _naming_the_file(folder / "u.user"):
        users = pd.read_csv(
            folder / "u.user",
            sep="|",
            names=["user_id", "age", "gender", "occupation", "zip_code"],
            dtype={"zip_code": str},
        )
    return build_interaction_data(ratings, _tidy_items(raw_items, genre_names), users)


@contextlib.contextmanager
def _naming_the_file(path: Path) -> Iterator[None]:
    """Turn a failure to read ``path`` (missing, damaged) into an error that names it and the fix.

    With ``verify=False`` nothing was checked before reading, so this is where
    a damaged file shows up.
    """
    try:
        yield
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(
            f"{path} could not be read ({type(error).__name__}: {str(error).splitlines()[0]}). "
            f"It is missing or damaged: delete {path.parent} so that tailrec downloads it again, "
            "or load with verify=True to check every file first."
        ) from error


def _tidy_items(raw_items: pd.DataFrame, genre_names: list[str]) -> pd.DataFrame:
    """Split the year out of the title and join the genre flags into one string."""
    titled = raw_items["title"].fillna("").str.strip()
    year_in_title = titled.str.extract(r"\((\d{4})\)\s*$")[0].astype(float)
    year_of_release = pd.to_datetime(
        raw_items["release_date"], format="%d-%b-%Y", errors="coerce"
    ).dt.year
    flags = raw_items[genre_names].to_numpy(dtype=bool)
    genres = ["|".join(g for g, on in zip(genre_names, row, strict=True) if on) for row in flags]
    return pd.DataFrame(
        {
            "item_id": raw_items["item_id"].astype("int64"),
            "title": titled.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True),
            "year": year_in_title.fillna(year_of_release),
            "genres": [g.replace("unknown", "").strip("|") for g in genres],
        }
    )


def build_interaction_data(
    interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame
) -> InteractionData:
    """Attach contiguous ``user_index`` / ``item_index`` columns to three tables.

    Users and items are indexed in sorted order of their ids. Every id in
    ``interactions`` must appear in ``users`` and ``items``.
    """
    users = users.sort_values("user_id").reset_index(drop=True)
    items = items.sort_values("item_id").reset_index(drop=True)
    users.insert(0, "user_index", np.arange(len(users), dtype=np.int64))
    items.insert(0, "item_index", np.arange(len(items), dtype=np.int64))
    user_map = pd.Series(users["user_index"].to_numpy(), index=users["user_id"])
    item_map = pd.Series(items["item_index"].to_numpy(), index=items["item_id"])
    unknown_users = set(interactions["user_id"]) - set(user_map.index)
    unknown_items = set(interactions["item_id"]) - set(item_map.index)
    if unknown_users or unknown_items:
        raise ValueError(
            f"Interactions name {len(unknown_users)} users and {len(unknown_items)} items that "
            "are missing from the user and item tables; add them to those tables first."
        )
    interactions = interactions.reset_index(drop=True).copy()
    interactions["user_index"] = user_map.loc[interactions["user_id"]].to_numpy()
    interactions["item_index"] = item_map.loc[interactions["item_id"]].to_numpy()
    return InteractionData(interactions=interactions, items=items, users=users)


def subsample_users(data: InteractionData, n_users: int, seed: int) -> InteractionData:
    """Keep ``n_users`` users drawn at random and the items they rated, re-indexed.

    Used by the notebooks' small mode so that a whole run takes a couple of minutes.
    """
    if n_users >= data.n_users:
        return data
    rng = np.random.default_rng(seed)
    kept_users = np.sort(rng.choice(data.users["user_id"].to_numpy(), n_users, replace=False))
    interactions = data.interactions[data.interactions["user_id"].isin(kept_users)]
    kept_items = interactions["item_id"].unique()
    drop = ["user_index", "item_index"]
    return build_interaction_data(
        interactions.drop(columns=drop),
        data.items[data.items["item_id"].isin(kept_items)].drop(columns="item_index"),
        data.users[data.users["user_id"].isin(kept_users)].drop(columns="user_index"),
    )
