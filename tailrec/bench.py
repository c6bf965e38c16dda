"""Benchmarks: ``python -m tailrec.bench quality --data-dir DIR --out OUT``.

The quality benchmark runs every model under every protocol in one process
and writes, under ``OUT``:

- ``results.json``: one row per (model, protocol, group, metric) with the
  value and the model's fit time in seconds;
- ``results.md``: NDCG@10 and Recall@10 tables, models side by side;
- ``topk/<protocol>/<model>.csv``: ``user_id,item_id,rank,score``, the top 10
  of every test user, in original MovieLens ids;
- ``splits/<protocol>/{train,validation,test}.csv``: the exact splits, so the
  lists can be re-scored with any independent evaluator.

Protocols: ``published`` (per-item stratified 75/25, seed 42), ``random_user``
(per-user random 75/25, reported per segment) and ``few_shot_N`` (20% of users
keep only their N earliest ratings). Settings such as EASE's ``l2`` are chosen
on the validation set, never on the test set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tailrec.baselines import bpr_mf_scorer, ease_scorer, popularity_scorer
from tailrec.course import CourseSettings, encode_split, fit
from tailrec.data import InteractionData, load_movielens, subsample_users
from tailrec.encoder import TextEncoder
from tailrec.evaluation import Scorer, evaluate_ranking, model_scorer, top_k_items
from tailrec.protocols import few_shot_split, published_split
from tailrec.segments import segment_users
from tailrec.splits import Split, random_user_split

EASE_L2_GRID = (100.0, 250.0, 500.0, 1000.0)
METRICS = ("ndcg", "recall", "precision", "map")


def protocols(
    data: InteractionData, shots: tuple[int, ...], seed: int
) -> dict[str, tuple[Split, np.ndarray | None]]:
    """Every protocol's split, and for few-shot protocols the held-out users."""
    found: dict[str, tuple[Split, np.ndarray | None]] = {
        "published": (published_split(data.interactions, seed), None),
        "random_user": (random_user_split(data.interactions, seed=seed), None),
    }
    for n in shots:
        found[f"few_shot_{n}"] = few_shot_split(data.interactions, n, seed=seed)
    return found


def fit_ease(split: Split, n_items: int) -> Scorer:
    """EASE with ``l2`` chosen on validation, then refit on train + validation."""
    best = max(
        EASE_L2_GRID,
        key=lambda l2: evaluate_ranking(
            ease_scorer(split.train, n_items, l2), split.validation, [split.train], n_items
        )["ndcg"].mean(),
    )
    return ease_scorer(pd.concat([split.train, split.validation]), n_items, best)


def model_builders(
    settings: CourseSettings, encoder: TextEncoder
) -> dict[str, Callable[[InteractionData, Split], Scorer]]:
    """Each model as a function from (data, split) to a fitted scorer."""

    def tailrec(use_text: bool) -> Callable[[InteractionData, Split], Scorer]:
        def build(data: InteractionData, split: Split) -> Scorer:
            course = encode_split(data, split, encoder, settings.max_titles)
            model, _ = fit(course, replace(settings, use_text=use_text))
            return model_scorer(model)

        return build

    return {
        "popularity": lambda data, split: popularity_scorer(
            pd.concat([split.train, split.validation]), data.n_items
        ),
        "ease": lambda data, split: fit_ease(split, data.n_items),
        "bpr_mf": lambda data, split: bpr_mf_scorer(
            split.train,
            split.validation,
            data.n_users,
            data.n_items,
            epochs=settings.epochs,
            seed=settings.seed,
        ),
        "tailrec": tailrec(use_text=True),
        "tailrec_ids_only": tailrec(use_text=False),
    }


def write_top_k(
    path: Path, data: InteractionData, scorer: Scorer, users: np.ndarray, seen: list, k: int
) -> None:
    """The top ``k`` of every user as ``user_id,item_id,rank,score`` in original ids."""
    top = top_k_items(scorer, users, k, seen)  # (U, k) item indices
    scores = np.take_along_axis(np.asarray(scorer(users), dtype=np.float64), top, axis=1)
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(data.users["user_id"].to_numpy()[users], k),
            "item_id": data.items["item_id"].to_numpy()[top.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "score": scores.ravel(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_split(folder: Path, split: Split) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["user_id", "item_id", "rating", "timestamp"]
    for part in ("train", "validation", "test"):
        getattr(split, part)[columns].to_csv(folder / f"{part}.csv", index=False)


def quality(
    data_dir: str | None,
    out: Path,
    seed: int = 42,
    epochs: int = 30,
    shots: tuple[int, ...] = (0, 1, 3, 5),
    n_users: int | None = None,
    k: int = 10,
    echo: Callable[..., None] = print,
) -> pd.DataFrame:
    """Run every model under every protocol; write and return the results table."""
    data = load_movielens(data_dir)
    if n_users is not None:
        data = subsample_users(data, n_users, seed)
    settings = CourseSettings(data_dir=data_dir, seed=seed, epochs=epochs, k=k)
    encoder = TextEncoder(settings.encoder)
    rows = []
    for protocol, (split, held_out) in protocols(data, shots, seed).items():
        write_split(out / "splits" / protocol, split)
        seen = [split.train, split.validation]
        segments = segment_users(split.train, data.n_users)
        for name, build in model_builders(settings, encoder).items():
            started = time.perf_counter()
            scorer = build(data, split)
            seconds = time.perf_counter() - started
            per_user = evaluate_ranking(scorer, split.test, seen, data.n_items, k)
            write_top_k(
                out / "topk" / protocol / f"{name}.csv",
                data,
                scorer,
                per_user["user_index"].to_numpy(),
                seen,
                k,
            )
            groups = {"all": per_user}
            if held_out is None:
                labels = segments.loc[per_user["user_index"]].to_numpy()
                groups |= {s: per_user[labels == s] for s in ("head", "torso", "tail")}
            for group, frame in groups.items():
                for metric in METRICS:
                    rows.append(
                        {
                            "model": name,
                            "protocol": protocol,
                            "group": group,
                            "metric": f"{metric}@{k}",
                            "value": float(frame[metric].mean()),
                            "users": len(frame),
                            "fit_seconds": round(seconds, 2),
                        }
                    )
            ndcg = per_user["ndcg"].mean()
            echo(f"{protocol:<12} {name:<18} NDCG@{k} {ndcg:.4f}  fit {seconds:.1f} s", flush=True)
    results = pd.DataFrame(rows)
    write_results(results, out, k)
    return results


def write_results(results: pd.DataFrame, out: Path, k: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results.to_dict("records"), indent=1) + "\n")
    lines = ["# Quality benchmark", ""]
    for metric in (f"ndcg@{k}", f"recall@{k}"):
        table = results[results["metric"] == metric].pivot_table(
            index=["protocol", "group"], columns="model", values="value", sort=False
        )
        lines += [f"## {metric}", "", markdown_table(table), ""]
    (out / "results.md").write_text("\n".join(lines))


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of a frame with a (possibly multi-level) index, values to 4 decimals."""
    names = [str(n) for n in table.index.names]
    header = "| " + " | ".join(names + [str(c) for c in table.columns]) + " |"
    rule = "|" + "---|" * (len(names) + len(table.columns))
    body = []
    for key, row in table.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in keys] + [f"{v:.4f}" for v in row.to_numpy()]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tailrec.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("quality", help="every model under every protocol")
    run.add_argument("--data-dir", help="folder holding ml-100k/")
    run.add_argument("--out", type=Path, required=True, help="folder for the results")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--epochs", type=int, default=30)
    run.add_argument("--users", type=int, help="keep this many random users (a quick check)")
    args = parser.parse_args(argv)
    try:
        quality(args.data_dir, args.out, seed=args.seed, epochs=args.epochs, n_users=args.users)
    except ValueError as error:
        print(f"tailrec.bench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
