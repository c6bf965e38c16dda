"""The speed benchmark: tailrec against what a user would otherwise run, in one process run.

Five measurements (:data:`PARTS`), each beside its reference, on this machine:

- **encoding**: :class:`tailrec.encoder.TextEncoder` against
  sentence-transformers' own ``encode()`` on the same model, texts, device and
  batch size (when sentence-transformers is installed), with the smallest
  cosine between the two embeddings of a text.
- **scoring**: the full catalogue scored and the top ``k`` taken for every
  user, by :func:`tailrec.evaluation.top_k_items` (chunked, so memory stays
  bounded; ties broken by a fixed hash) against a plain numpy product and
  ``argpartition`` over the whole matrix at once.
- **training**: tailrec's whole fit on the published split, with the full and
  the sampled softmax, against LightFM-WARP, EASE and popularity: fit time
  and NDCG@10 (:func:`training_speed`).
- **scale**: one training epoch of the history model on seeded power-law
  interactions (:mod:`tailrec.synthetic`) of growing size, each in a fresh
  process so that its peak memory is its own (:func:`epoch_speed`).
- **course**: the wall time of ``tailrec run`` in small and full mode.

Speed is measured here and reported, never asserted in tests.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tailrec.baselines import fit_ease, lightfm_scorer, popularity_scorer
from tailrec.data import InteractionData, subsample_users
from tailrec.device import best_device
from tailrec.encoder import CACHE_DIR_ENV, DEFAULT_ENCODER, TextEncoder, resolve_encoder
from tailrec.evaluation import Scorer, evaluate_ranking, top_k_items
from tailrec.history_model import HistoryBilinearModel, HistoryModelConfig, train_history_model
from tailrec.protocols import published_split
from tailrec.recommender import fit_tailrec_parts
from tailrec.synthetic import power_law_interactions, random_text_features
from tailrec.text import item_texts, profile_texts

SCALE_SIZES = (100_000, 1_000_000, 10_000_000)
# The full softmax costs users x items per epoch: 10^7 interactions (1M x 100k)
# would take hours on a laptop, so the scale curve runs it up to 10^6 only.
FULL_SOFTMAX_LIMIT = 1_000_000
SCALE_NEGATIVES = 1024
SCALE_BATCH_SIZE = 1024
PARTS = ("encoding", "scoring", "training", "scale", "course")
DEFAULT_PARTS = PARTS[:4]  # the course runs take the longest: asked for by name


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


def epoch_speed(
    n_interactions: int, seed: int = 42, negatives: int = 0, batch_size: int = SCALE_BATCH_SIZE
) -> dict:
    """One epoch of the history model on synthetic data, timed and measured in a fresh process.

    ``negatives`` 0 is the full softmax; N > 0 the sampled one
    (:mod:`tailrec.sampled_softmax`). The data has a user per 10 interactions
    and an item per 100, so 10^7 interactions are 1M users x 100k items.
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_one_epoch, (n_interactions, seed, negatives, batch_size))


def _one_epoch(n_interactions: int, seed: int, negatives: int, batch_size: int) -> dict:
    baseline = _peak_mb()
    n_users, n_items = max(n_interactions // 10, 100), max(n_interactions // 100, 100)
    interactions = power_law_interactions(n_interactions, n_users, n_items, seed)
    items = torch.from_numpy(random_text_features(n_items, seed=seed))
    profiles = torch.from_numpy(random_text_features(n_users, seed=seed + 1))
    config = HistoryModelConfig(epochs=1, seed=seed, negatives=negatives, batch_size=batch_size)
    model = HistoryBilinearModel(items, profiles, config)
    device = best_device()
    # The first optimiser step of a process imports and compiles helpers (~0.9 s here):
    # a one-off cost, paid before the clock starts.
    warm_up = torch.nn.Parameter(torch.zeros(1, device=device))
    warm_up.grad = torch.zeros_like(warm_up)
    torch.optim.Adam([warm_up], fused=bool(negatives) or None).step()
    started = time.perf_counter()
    train_history_model(model, interactions, None, profiles, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = _since(started)
    row = {
        "interactions": n_interactions,
        "users": n_users,
        "items": n_items,
        "loss": f"sampled softmax, {negatives} negatives" if negatives else "full softmax",
        "batch_size": batch_size,
        "epoch_seconds": seconds,
        "interactions_per_s": n_interactions / seconds,
        "peak_memory_mb": _peak_mb(),
        "process_baseline_mb": baseline,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        row["gpu_peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def training_speed(
    data: InteractionData,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    seed: int = 42,
    negatives: int = 256,
    k: int = 10,
    max_epochs: int | None = None,
) -> list[dict]:
    """Wall time to fit on the published split, and the NDCG@``k`` each fit reaches.

    tailrec's fit is the whole recommender (:func:`tailrec.recommender.fit_tailrec_parts`:
    a probe trained with early stopping, EASE's term, the profile prior and a
    refit on train + validation), once with the full softmax and once with
    ``negatives`` sampled negatives. Beside it: LightFM-WARP (30 epochs,
    2 threads) and EASE (``l2`` chosen on validation), which train on the same
    75%, and popularity. ``interactions_per_s`` is epochs x training
    interactions / fit seconds, so it counts the fit's evaluation passes as
    time spent.
    """
    split = published_split(data.interactions, seed)
    seen = [split.train, split.validation]
    everything = pd.concat(seen)
    n_users, n_items = data.n_users, data.n_items

    def tailrec(changes: dict) -> Callable[[], tuple[Scorer, int]]:
        def fit() -> tuple[Scorer, int]:
            config = HistoryModelConfig(seed=seed, **changes).capped(max_epochs)
            parts = fit_tailrec_parts(
                split.train,
                split.validation,
                item_features,
                profile_features,
                config,
                best_device(),
            )
            return parts.recommender()[0], parts.info["epochs_trained"]

        return fit

    fits: dict[str, Callable[[], tuple[Scorer, int | None]]] = {
        "tailrec": tailrec({}),
        f"tailrec_sampled_{negatives}": tailrec({"negatives": negatives}),
        "ease": lambda: (fit_ease(split.train, split.validation, n_items, k=k)[0], None),
        "popularity": lambda: (popularity_scorer(everything, n_items), None),
    }
    if importlib.util.find_spec("lightfm") is not None:
        fits["lightfm_warp"] = lambda: (
            lightfm_scorer(everything, n_users, n_items, epochs=30, seed=seed, threads=2),
            30,
        )
    rows = []
    for name, fit in fits.items():
        started = time.perf_counter()
        scorer, epochs = fit()
        seconds = _since(started)
        ndcg = evaluate_ranking(scorer, split.test, seen, n_items, k)["ndcg"].mean()
        row = {"model": name, "fit_seconds": seconds, f"ndcg@{k}": float(ndcg), "epochs": epochs}
        if epochs is not None:
            row["epochs_per_s"] = epochs / seconds
            row["interactions_per_s"] = epochs * len(everything) / seconds
        rows.append(row)
    return rows


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


def course_speed(out: Path, small: bool) -> dict:
    """Wall time of ``tailrec run`` (``--small`` or full) in a fresh process, from an empty cache.

    The run writes into ``out``; the encoder's cache starts empty, as on a
    first run, so the time includes encoding the texts.
    """
    with tempfile.TemporaryDirectory() as cache:
        environment = os.environ | {CACHE_DIR_ENV: cache}
        command = [sys.executable, "-m", "tailrec.cli", "run", "--out", str(out)]
        command += ["--small"] if small else []
        started = time.perf_counter()
        finished = subprocess.run(command, env=environment, capture_output=True, text=True)
        seconds = _since(started)
    if finished.returncode != 0:
        raise RuntimeError(
            f"tailrec run {'--small ' if small else ''}failed (exit {finished.returncode}): "
            f"{finished.stderr.strip()[-2000:]}"
        )
    return {"mode": "small" if small else "full", "seconds": seconds}


def measure_speed(
    data: InteractionData,
    parts: tuple[str, ...] = DEFAULT_PARTS,
    sizes: tuple[int, ...] = SCALE_SIZES,
    scoring_users: int = 5000,
    scoring_items: int = 10_000,
    seed: int = 42,
    n_users: int | None = None,
    max_epochs: int | None = None,
    out: Path | None = None,
    echo: Callable[..., None] = print,
) -> dict:
    """The measurements named in ``parts`` (see :data:`PARTS`), as one dict.

    ``n_users`` (a seeded sample of users) and ``max_epochs`` (a cap on
    tailrec's epochs) shrink the training comparison, for quick checks; the
    course runs write their run folders under ``out``.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"Unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}.")
    device = best_device()
    results: dict = {"device": str(device), "torch_threads": torch.get_num_threads()}
    results["run"] = {"seed": seed, "parts": list(parts)}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    texts = item_texts(data.items)
    if "encoding" in parts:
        results["encoding"] = encoding_speed(texts)
        echo(f"encoding: {results['encoding']}", flush=True)
    if "scoring" in parts:
        results["scoring"] = scoring_speed(scoring_users, scoring_items, seed=seed)
        echo(f"scoring: {results['scoring']}", flush=True)
    if "training" in parts:
        sample = data if n_users is None else subsample_users(data, n_users, seed)
        encoder = TextEncoder(DEFAULT_ENCODER)
        features = (
            encoder.encode(item_texts(sample.items)),
            encoder.encode(profile_texts(sample.users)),
        )
        results["training"] = training_speed(sample, *features, seed=seed, max_epochs=max_epochs)
        results["run"] |= {"users": sample.n_users, "max_epochs": max_epochs}
        for row in results["training"]:
            echo(f"training: {row}", flush=True)
    if "scale" in parts:
        results["scale"] = []
        for size in sizes:
            runs = [SCALE_NEGATIVES] + ([0] if size <= FULL_SOFTMAX_LIMIT else [])
            for negatives in runs:
                results["scale"].append(epoch_speed(size, seed, negatives))
                echo(f"scale: {results['scale'][-1]}", flush=True)
    if "course" in parts:
        if out is None:
            raise ValueError("Timing the course needs a folder for its runs (out).")
        results["course"] = [
            course_speed(out / f"course-{mode}", mode == "small") for mode in ("small", "full")
        ]
        echo(f"course: {results['course']}", flush=True)
    return results
