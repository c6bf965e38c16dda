"""The speed benchmark: tailrec against what a user would otherwise run, in one process run.

Three measurements, each beside its reference, on this machine:

- **Encoding**: :class:`tailrec.encoder.TextEncoder` against
  sentence-transformers' own ``encode()`` on the same model, texts, device and
  batch size (when sentence-transformers is installed), with the smallest
  cosine between the two embeddings of a text.
- **Scoring**: the full catalogue scored and the top ``k`` taken for every
  user, by :func:`tailrec.evaluation.top_k_items` (chunked, so memory stays
  bounded; ties broken by a fixed hash) against a plain numpy product and
  ``argpartition`` over the whole matrix at once.
- **Scale**: one training epoch of the history model on seeded power-law
  interactions (:mod:`tailrec.synthetic`) of growing size, each in a fresh
  process so that its peak memory is its own.

Speed is measured here and reported, never asserted in tests.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import resource
import time
from collections.abc import Callable

import numpy as np
import torch

from tailrec.encoder import DEFAULT_ENCODER, TextEncoder, resolve_encoder
from tailrec.evaluation import top_k_items
from tailrec.history_model import HistoryBilinearModel, HistoryModelConfig, train_history_model
from tailrec.synthetic import power_law_interactions, random_text_features

SCALE_SIZES = (100_000, 1_000_000)


def encoding_speed(texts: list[str], batch_size: int = 64) -> dict:
    """Texts per second of tailrec's encoder and of sentence-transformers', and their agreement."""
    encoder = TextEncoder(DEFAULT_ENCODER, batch_size=batch_size, cache_dir=False)
    encoder.encode(texts[:8])  # load the model outside the timing
    started = time.perf_counter()
    ours = encoder.encode(texts)
    result = {"texts": len(texts), "tailrec_texts_per_s": len(texts) / _since(started)}
    if importlib.util.find_spec("sentence_transformers") is None:
        result["reference"] = "sentence-transformers is not installed"
        return result
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(resolve_encoder(DEFAULT_ENCODER), device=str(encoder.device))
    reference.encode(texts[:8], batch_size=batch_size)
    started = time.perf_counter()
    theirs = reference.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    seconds = _since(started)
    result |= {
        "reference": "sentence-transformers encode()",
        "reference_texts_per_s": len(texts) / seconds,
        "speed_ratio": result["tailrec_texts_per_s"] * seconds / len(texts),
        "min_cosine": float((ours * theirs).sum(1).min()),
    }
    return result


def scoring_speed(n_users: int, n_items: int, dim: int = 128, k: int = 10, seed: int = 42) -> dict:
    """User x item scores per second for the top ``k`` of every user, tailrec against numpy."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, dim)).astype(np.float32)
    W = (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32)
    items = rng.standard_normal((n_items, dim)).astype(np.float32)
    user_t, w_t, item_t = (torch.from_numpy(x) for x in (users, W, items))

    def scorer(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return (user_t[torch.from_numpy(batch)] @ w_t @ item_t.T).numpy()

    started = time.perf_counter()
    ours = top_k_items(scorer, np.arange(n_users), k)
    tailrec_seconds = _since(started)
    started = time.perf_counter()
    scores = users @ W @ items.T  # the whole matrix at once
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
    theirs = np.take_along_axis(best, order, axis=1)
    reference_seconds = _since(started)
    pairs = n_users * n_items
    return {
        "users": n_users,
        "items": n_items,
        "tailrec_pairs_per_s": pairs / tailrec_seconds,
        "reference_pairs_per_s": pairs / reference_seconds,
        "speed_ratio": reference_seconds / tailrec_seconds,
        "same_top_k_share": float((np.sort(ours, 1) == np.sort(theirs, 1)).all(1).mean()),
        "reference_matrix_mb": scores.nbytes / 2**20,
    }


def epoch_speed(n_interactions: int, seed: int = 42) -> dict:
    """One epoch of the history model on synthetic data, timed and measured in a fresh process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_one_epoch, (n_interactions, seed))


def _one_epoch(n_interactions: int, seed: int) -> dict:
    baseline = _peak_mb()
    n_users, n_items = max(n_interactions // 10, 100), max(n_interactions // 100, 100)
    interactions = power_law_interactions(n_interactions, n_users, n_items, seed)
    items = torch.from_numpy(random_text_features(n_items, seed=seed))
    profiles = torch.from_numpy(random_text_features(n_users, seed=seed + 1))
    model = HistoryBilinearModel(items, profiles, HistoryModelConfig(epochs=1, seed=seed))
    started = time.perf_counter()
    train_history_model(model, interactions, None, profiles)
    return {
        "interactions": n_interactions,
        "users": n_users,
        "items": n_items,
        "epoch_seconds": _since(started),
        "interactions_per_s": n_interactions / _since(started),
        "peak_memory_mb": _peak_mb(),
        "process_baseline_mb": baseline,
        "threads": torch.get_num_threads(),
    }


def _peak_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's VmHWM belongs to the process's own memory; ``ru_maxrss`` would not
    do here, since a child starts with its parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _since(started: float) -> float:
    return max(time.perf_counter() - started, 1e-9)


def measure_speed(
    item_texts: list[str],
    sizes: tuple[int, ...] = SCALE_SIZES,
    scoring_users: int = 5000,
    scoring_items: int = 10_000,
    seed: int = 42,
    echo: Callable[..., None] = print,
) -> dict:
    """Every measurement of the module, as one dict (see :func:`tailrec.bench.speed`)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {"device": device, "torch_threads": torch.get_num_threads()}
    results["encoding"] = encoding_speed(item_texts)
    echo(f"encoding: {results['encoding']}", flush=True)
    results["scoring"] = scoring_speed(scoring_users, scoring_items, seed=seed)
    echo(f"scoring: {results['scoring']}", flush=True)
    results["scale"] = []
    for size in sizes:
        results["scale"].append(epoch_speed(size, seed))
        echo(f"scale: {results['scale'][-1]}", flush=True)
    return results
