"""Train the history model on one or many processes: ``python -m tailrec.train_distributed``.

One process::

    python -m tailrec.train_distributed --data-dir DIR --epochs 40 --out runs/one

Two CPU processes on this machine (gloo), or 8 GPUs (NCCL; one process each)::

    torchrun --standalone --nproc-per-node 2 -m tailrec.train_distributed ... --out runs/two
    torchrun --standalone --nproc-per-node 8 -m tailrec.train_distributed ... --out runs/gpus

Several machines: the same command on each, with ``--nnodes N --node-rank R
--rdzv-endpoint HOST:PORT`` in place of ``--standalone`` (torchrun's own
options). Each process trains on its shard of the users
(:mod:`tailrec.distributed`). The first process writes ``OUT/model.pt`` (the
weights) and ``OUT/training.json`` (settings, loss and seconds per epoch,
processes, device and, on MovieLens, NDCG@10 on the published split's test
set).

``--synthetic N`` trains on N seeded power-law interactions
(:mod:`tailrec.synthetic`) instead of MovieLens, with random vectors in
place of text features: a check of speed and of agreement between runs,
not of quality.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tailrec.checks import non_negative_int, positive_int
from tailrec.distributed import process_group, start, stop
from tailrec.history_model import (
    HistoryBilinearModel,
    HistoryModelConfig,
    history_scorer,
    train_history_model,
)


def synthetic_inputs(n_interactions: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Power-law interactions with a user per 10 and an item per 100, and random features."""
    from tailrec.synthetic import power_law_interactions, random_text_features

    n_users, n_items = max(n_interactions // 10, 100), max(n_interactions // 100, 100)
    interactions = power_law_interactions(n_interactions, n_users, n_items, seed)
    return (
        interactions,
        random_text_features(n_items, seed=seed),
        random_text_features(n_users, seed=seed + 1),
    )


def movielens_inputs(data_dir: str | None, seed: int):
    """The published split of MovieLens-100k and the encoder's item and profile features."""
    from tailrec.data import load_movielens
    from tailrec.encoder import DEFAULT_ENCODER, TextEncoder
    from tailrec.protocols import published_split
    from tailrec.text import item_texts, profile_texts

    data = load_movielens(data_dir)
    split = published_split(data.interactions, seed)
    encoder = TextEncoder(DEFAULT_ENCODER)
    return (
        split,
        encoder.encode(item_texts(data.items)),
        encoder.encode(profile_texts(data.users)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tailrec.train_distributed", description=__doc__.split("\n")[0]
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", default=None, help="MovieLens data folder")
    source.add_argument("--synthetic", type=positive_int, metavar="N", help="N interactions")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--negatives", type=non_negative_int, default=0, help="0: full softmax")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="users per step")
    parser.add_argument("--seed", type=non_negative_int, default=42)
    args = parser.parse_args(argv)
    try:  # before any work: a folder that cannot be made would lose the results
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out} cannot be used as a folder ({error.strerror}).")
    try:
        device = start()
        code = _train(args, device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop()
    return code


def _train(args: argparse.Namespace, device: torch.device) -> int:
    config = HistoryModelConfig(
        epochs=args.epochs, negatives=args.negatives, batch_size=args.batch_size, seed=args.seed
    )
    split = None
    if args.synthetic:
        train, items, profiles = synthetic_inputs(args.synthetic, args.seed)
    else:
        split, items, profiles = movielens_inputs(args.data_dir, args.seed)
        train = pd.concat([split.train, split.validation])
    model = HistoryBilinearModel(torch.as_tensor(items), torch.as_tensor(profiles), config)
    history = train_history_model(model, train, None, profiles, device)
    rank, world = process_group()
    if rank != 0:
        return 0
    summary = {
        "settings": config.to_dict(),
        "source": f"synthetic {args.synthetic}" if args.synthetic else "MovieLens-100k",
        "processes": world,
        "device": str(device),
        "train_loss": history.train_loss,
        "epoch_seconds": history.seconds,
    }
    if split is not None:
        from tailrec.evaluation import evaluate_ranking

        scorer = history_scorer(model, train, profiles)
        per_user = evaluate_ranking(scorer, split.test, [train], model.n_items, 10)
        summary["test_ndcg_at_10"] = float(per_user["ndcg"].mean())
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, args.out / "model.pt")
    (args.out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
