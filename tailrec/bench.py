"""Benchmarks: ``python -m tailrec.bench quality --data-dir DIR --out OUT``.

The quality benchmark runs every model under every protocol in one process
and writes, under ``OUT``:

- ``results.json``: one row per (model, protocol, group, metric) with the
  value and the model's fit time in seconds;
- ``results.md``: NDCG@10, Recall@10 and MAP@10 (``map_full``) tables,
  models side by side, and tailrec beside the best baseline of each row;
- ``topk/<protocol>/<model>.csv``: ``user_id,item_id,rank,score``, the top 10
  of every test user, in original MovieLens ids;
- ``splits/<protocol>/{train,validation,test}.csv``: the exact splits, so the
  lists can be re-scored with any independent evaluator.

Protocols: ``published`` (per-item stratified 75/25, seed 42), ``random_user``
(per-user random 75/25, reported per segment) and ``few_shot_N`` (20% of users
keep only their N earliest ratings). Settings such as EASE's ``l2`` are chosen
on the validation set, never on the test set. The ablations that reuse the
full tailrec model's trained parts (``tailrec_no_item_item``,
``tailrec_no_profile``) report as fit time only the re-choosing of weights.

``python -m tailrec.bench new-items --data-dir DIR --out OUT`` measures
new-item cold start (:mod:`tailrec.cold_items`): 10% of the films are held
out entirely and ranked, among themselves, through their text alone; it
writes ``new_items.json`` (one row per model and metric) and ``new_items.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tailrec.baselines import (
    bpr_mf_scorer,
    fit_ease,
    implicit_scorer,
    lightfm_scorer,
    popularity_scorer,
)
from tailrec.checks import positive_int
from tailrec.cold_items import compare_new_items
from tailrec.data import InteractionData, load_movielens, subsample_users
from tailrec.device import best_device
from tailrec.encoder import DEFAULT_ENCODER, TextEncoder
from tailrec.evaluation import Scorer, evaluate_ranking, top_k_items
from tailrec.feedback_bench import USER_STEPS, compare_feedback, update_lift
from tailrec.history_model import HistoryModelConfig
from tailrec.protocols import few_shot_split, published_split
from tailrec.recommender import TailrecFit, fit_tailrec_parts
from tailrec.segments import segment_users
from tailrec.speed_bench import DEFAULT_PARTS, PARTS, SCALE_SIZES, measure_speed
from tailrec.splits import Split, random_user_split
from tailrec.text import age_band, item_texts, profile_texts

# map_full divides by all of a user's relevant items (not min(n, k)), as the
# published MovieLens-100k table does; ``map`` is the usual average precision at k.
METRICS = ("ndcg", "recall", "precision", "map", "map_full")
Builder = Callable[[Split], Scorer]
# The models every install has: the optional LightFM and implicit baselines left out.
CORE_MODELS = (
    "popularity",
    "ease",
    "bpr_mf",
    "tailrec",
    "tailrec_no_item_item",
    "tailrec_no_profile",
    "tailrec_no_ssl",
    "tailrec_no_text",
)


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


def indicator_features(labels: pd.Series):  # -> scipy.sparse.csr_matrix
    """``[I | one-hot(labels)]``: an ID column per row plus one per label ("a|b" = two labels)."""
    from scipy import sparse  # installed with LightFM, the only user of these matrices

    dummies = labels.fillna("").astype(str).str.get_dummies(sep="|")
    onehot = sparse.csr_matrix(dummies.to_numpy(dtype=np.float32))
    return sparse.hstack([sparse.identity(len(labels), format="csr"), onehot]).tocsr()


def user_labels(users: pd.DataFrame) -> pd.Series:
    """Each user's age band, gender and occupation as "|"-joined labels, for LightFM."""
    bands = users["age"].map(age_band)
    return bands + "|" + users["gender"].astype(str) + "|" + users["occupation"].astype(str)


def model_builders(
    data: InteractionData,
    item_features: np.ndarray,
    profile_features: np.ndarray,
    seed: int,
    max_epochs: int | None,
) -> dict[str, Builder]:
    """Each model as a function from a split to a fitted scorer; optional ones when installed."""
    n_users, n_items = data.n_users, data.n_items

    # Variants with the same settings share one fit per split; the split itself is
    # kept with its fit and compared by identity, so another split never reuses it.
    fitted: dict[str, tuple[Split, TailrecFit]] = {}

    def tailrec(variant: str = "full", **changes) -> Builder:
        """One tailrec variant; variants with the same settings share one fit per split."""
        config = HistoryModelConfig(seed=seed, **changes).capped(max_epochs)
        key = repr(sorted(changes.items()))

        def build(split: Split) -> Scorer:
            if key not in fitted or fitted[key][0] is not split:
                fitted.clear()  # one split at a time: free the previous split's models
                parts = fit_tailrec_parts(
                    split.train,
                    split.validation,
                    item_features,
                    profile_features,
                    config,
                    best_device(),
                )
                fitted[key] = (split, parts)
            parts = fitted[key][1]
            scorer, _ = parts.recommender(
                item_item=variant != "no_item_item",
                profile_prior=variant not in ("no_profile", "no_text"),
            )
            return scorer

        return build

    def all_seen(split: Split) -> pd.DataFrame:
        return pd.concat([split.train, split.validation])

    builders: dict[str, Builder] = {
        "popularity": lambda split: popularity_scorer(all_seen(split), n_items),
        "ease": lambda split: fit_ease(split.train, split.validation, n_items)[0],
        "bpr_mf": lambda split: bpr_mf_scorer(
            split.train,
            split.validation,
            n_users,
            n_items,
            epochs=30 if max_epochs is None else min(30, max_epochs),
            seed=seed,
        ),
    }
    if importlib.util.find_spec("lightfm") is not None:
        users_x = indicator_features(user_labels(data.users))
        items_x = indicator_features(data.items["genres"])
        builders["lightfm_warp"] = lambda split: lightfm_scorer(
            all_seen(split), n_users, n_items, seed=seed
        )
        builders["lightfm_warp_features"] = lambda split: lightfm_scorer(
            all_seen(split), n_users, n_items, users_x, items_x, seed=seed
        )
    if importlib.util.find_spec("implicit") is not None:
        for algorithm in ("als", "bpr"):
            builders[f"implicit_{algorithm}"] = lambda split, a=algorithm: implicit_scorer(
                all_seen(split), n_users, n_items, a, seed=seed
            )
    builders |= {
        "tailrec": tailrec(),
        "tailrec_no_item_item": tailrec("no_item_item"),
        "tailrec_no_profile": tailrec("no_profile"),
        "tailrec_no_ssl": tailrec(ssl_weight=0.0),
        "tailrec_no_text": tailrec("no_text", use_item_text=False, ssl_weight=0.0),
    }
    return builders


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


def _data_and_features(
    data_dir: str | None, out: Path, n_users: int | None, seed: int, encoder: str
) -> tuple[InteractionData, np.ndarray, np.ndarray]:
    """The data (a seeded sample of ``n_users`` when given) and its item and profile features."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (new or existing).")
    data = load_movielens(data_dir)
    if n_users is not None:
        data = subsample_users(data, n_users, seed)
    text_encoder = TextEncoder(encoder)
    item_features = text_encoder.encode(item_texts(data.items))
    return data, item_features, text_encoder.encode(profile_texts(data.users))


def quality(
    data_dir: str | None,
    out: Path,
    seed: int = 42,
    max_epochs: int | None = None,
    shots: tuple[int, ...] = (0, 1, 3, 5),
    n_users: int | None = None,
    k: int = 10,
    encoder: str = DEFAULT_ENCODER,
    models: tuple[str, ...] | None = None,
    echo: Callable[..., None] = print,
) -> pd.DataFrame:
    """Run every model under every protocol; write and return the results table.

    ``max_epochs`` caps every trained model's epochs (for quick checks);
    ``models`` keeps only the named models.
    """
    data, item_features, profile_features = _data_and_features(
        data_dir, out, n_users, seed, encoder
    )
    builders = model_builders(data, item_features, profile_features, seed, max_epochs)
    if models is not None:
        unknown = sorted(set(models) - set(builders))
        if unknown:
            raise ValueError(
                f"Unknown or unavailable model(s) {', '.join(unknown)}; "
                f"choose from {', '.join(builders)} (the LightFM and implicit models need "
                "pip install 'tailrec[baselines]')."
            )
        builders = {name: builders[name] for name in models}
    rows = []
    for protocol, (split, held_out) in protocols(data, shots, seed).items():
        write_split(out / "splits" / protocol, split)
        seen = [split.train, split.validation]
        segments = segment_users(split.train, data.n_users)
        for name, build in builders.items():
            started = time.perf_counter()
            scorer = build(split)
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
            per_user["map_full"] = (
                per_user["map"] * np.minimum(per_user["n_relevant"], k) / per_user["n_relevant"]
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
    run = {"seed": seed, "users": data.n_users, "max_epochs": max_epochs, "k": k}
    write_results(results, out, k, run)
    echo(f"Results written to {out}", flush=True)
    return results


def write_results(results: pd.DataFrame, out: Path, k: int, run: dict | None = None) -> None:
    """``results.json`` and ``results.md`` in ``out``; ``run`` (the settings) heads the tables."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results.to_dict("records"), indent=1) + "\n")
    lines = ["# Quality benchmark", ""]
    if run:
        lines += ["Run: " + ", ".join(f"{name} = {value}" for name, value in run.items()), ""]
    users = results[results["metric"] == f"ndcg@{k}"].pivot_table(
        index=["protocol", "group"], values="users", aggfunc="max", sort=False
    )
    lines += ["## test users per row", "", markdown_table(users.astype(int)), ""]
    for metric in METRICS:
        name = f"{metric}@{k}"
        lines += [f"## {name}", "", markdown_table(metric_table(results, name)), ""]
    models = set(results["model"])
    if "tailrec" in models and any(not m.startswith("tailrec") for m in models):
        lines += [
            f"## tailrec against the best baseline (ndcg@{k})",
            "",
            markdown_table(against_best_baseline(results, f"ndcg@{k}")),
            "",
        ]
    (out / "results.md").write_text("\n".join(lines))


def new_items(
    data_dir: str | None,
    out: Path,
    seed: int = 42,
    max_epochs: int | None = None,
    n_users: int | None = None,
    new_fraction: float = 0.1,
    k: int = 10,
    encoder: str = DEFAULT_ENCODER,
    echo: Callable[..., None] = print,
) -> pd.DataFrame:
    """Measure new-item cold start (:func:`tailrec.cold_items.compare_new_items`); write it."""
    if not 0.0 < new_fraction < 1.0:
        raise ValueError(f"--new-fraction must be between 0 and 1 (exclusive), got {new_fraction}.")
    if seed < 0:
        raise ValueError(f"--seed must be a whole number of at least 0, got {seed}.")
    data, item_features, profile_features = _data_and_features(
        data_dir, out, n_users, seed, encoder
    )
    started = time.perf_counter()
    results = compare_new_items(
        data.interactions,
        item_features,
        profile_features,
        seed=seed,
        max_epochs=max_epochs,
        k=k,
        new_fraction=new_fraction,
        device=best_device(),
        echo=echo,
    )
    run = {"seed": seed, "users": data.n_users, "max_epochs": max_epochs, "k": k}
    run |= {"new_fraction": new_fraction, **results.attrs["run"]}
    run["seconds"] = round(time.perf_counter() - started, 1)
    write_new_items(results, out, run)
    echo(f"Results written to {out}", flush=True)
    return results


def write_new_items(results: pd.DataFrame, out: Path, run: dict) -> None:
    """``new_items.json`` (the rows and the run's settings) and ``new_items.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"run": run, "results": results.to_dict("records")}
    (out / "new_items.json").write_text(json.dumps(record, indent=1) + "\n")
    table = results.pivot_table(index="model", columns="metric", values="value", sort=False)
    # As objects, the counts stay whole numbers when markdown_table walks the rows.
    table["users"] = results.groupby("model", sort=False)["users"].max().astype(object)
    lines = [
        "# New-item cold start",
        "",
        "Candidates: the held-out (new) films only; each is known by its text alone.",
        "",
        "Run: " + ", ".join(f"{name} = {value}" for name, value in run.items()),
        "",
        markdown_table(table),
        "",
    ]
    (out / "new_items.md").write_text("\n".join(lines))


def feedback(
    data_dir: str | None,
    out: Path,
    seed: int = 42,
    max_epochs: int | None = None,
    n_users: int | None = None,
    rounds: int = 5,
    k: int = 10,
    encoder: str = DEFAULT_ENCODER,
    echo: Callable[..., None] = print,
) -> pd.DataFrame:
    """Measure CTR and conversion by round (:func:`tailrec.feedback_bench.compare_feedback`)."""
    data, item_features, profile_features = _data_and_features(
        data_dir, out, n_users, seed, encoder
    )
    started = time.perf_counter()
    results, facts = compare_feedback(
        data, item_features, profile_features, seed, rounds, k, max_epochs=max_epochs, echo=echo
    )
    run = {"seed": seed, "users": data.n_users, "max_epochs": max_epochs, "rounds": rounds, "k": k}
    run["seconds"] = round(time.perf_counter() - started, 1)
    write_feedback(results, facts, out, run)
    echo(f"Results written to {out}", flush=True)
    return results


def write_feedback(results: pd.DataFrame, facts: dict, out: Path, run: dict) -> None:
    """``feedback.json`` (rows, facts, settings) and ``feedback.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"run": run, "facts": facts, "results": results.to_dict("records")}
    (out / "feedback.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    lines = ["# Feedback benchmark", ""]
    lines += ["Run: " + ", ".join(f"{name} = {value}" for name, value in run.items()), ""]
    lines += [
        f"One user's update (fold-in and scoring of the catalogue), median: "
        f"{facts['update_ms']} ms; with {USER_STEPS} gradient steps on the user's vector: "
        f"{facts['update_with_steps_ms']} ms.",
        "",
    ]
    for metric in ("ctr", "conversion"):
        for (setting, group), rows in results.groupby(["setting", "group"], sort=False):
            table = rows.pivot(index="round", columns="model", values=metric)
            table = table[list(dict.fromkeys(rows["model"]))]  # the models in the order run
            users = int(rows["shown"].iloc[0] // run["k"])
            lines += [
                f"## {metric}: {setting}, {group} ({users} users)",
                "",
                markdown_table(table),
                "",
            ]
    mean = results.groupby(["setting", "group", "model"], sort=False)[["ctr", "conversion"]].mean()
    for metric in ("ctr", "conversion"):
        table = mean[metric].unstack("model")[list(dict.fromkeys(results["model"]))]
        lines += [f"## {metric} over all {run['rounds']} rounds", "", markdown_table(table), ""]
    lift = update_lift(results)
    lines += ["## tailrec's update against no update (relative)", "", markdown_table(lift), ""]
    (out / "feedback.md").write_text("\n".join(lines))


def speed(
    data_dir: str | None,
    out: Path,
    sizes: tuple[int, ...] = SCALE_SIZES,
    seed: int = 42,
    scoring: tuple[int, int] = (5000, 10_000),
    parts: tuple[str, ...] = DEFAULT_PARTS,
    n_users: int | None = None,
    max_epochs: int | None = None,
    echo: Callable[..., None] = print,
) -> dict:
    """Measure speed and scale (:func:`tailrec.speed_bench.measure_speed`); write it.

    ``n_users`` keeps a seeded sample of users for the training comparison
    and ``max_epochs`` caps tailrec's epochs there (quick checks only).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (new or existing).")
    out.mkdir(parents=True, exist_ok=True)  # now: a bad folder must not cost the measurements
    data = load_movielens(data_dir)
    results = measure_speed(
        data, parts, sizes, *scoring, seed, n_users, max_epochs, out=out, echo=echo
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "speed.md").write_text(speed_markdown(results))
    echo(f"Results written to {out}", flush=True)
    return results


def speed_markdown(results: dict) -> str:
    """The speed results as readable tables."""
    device = results["device"] + (f" ({results['gpu']})" if "gpu" in results else "")
    lines = ["# Speed benchmark", "", f"Device: {device}, torch threads: "]
    lines[-1] += f"{results['torch_threads']}."
    if "encoding" in results:
        lines += _encoding_lines(results["encoding"])
    if "scoring" in results:
        lines += _scoring_lines(results["scoring"])
    if "training" in results:
        lines += _training_lines(results["training"], results["run"])
    if "scale" in results:
        lines += _scale_lines(results["scale"])
    if "course" in results:
        lines += ["", "## The whole course (`tailrec run`, empty encoder cache)", ""]
        lines += [f"- {row['mode']}: {row['seconds'] / 60:.1f} min" for row in results["course"]]
    return "\n".join(lines) + "\n"


def _encoding_lines(enc: dict) -> list[str]:
    lines = ["", "## Encoding MovieLens-100k item texts", ""]
    lines += [f"- tailrec: {enc['tailrec_texts_per_s']:.1f} texts/s ({enc['texts']} texts)"]
    if "reference_texts_per_s" not in enc:
        lines.append(f"- reference: {enc['reference']}")
        return lines
    lines.append(f"- {enc['reference']}: {enc['reference_texts_per_s']:.1f} texts/s")
    lines.append(
        f"- ratio tailrec / reference: {enc['speed_ratio']:.2f}; "
        f"smallest cosine between the two: {enc['min_cosine']:.6f}"
    )
    return lines


def _scoring_lines(sco: dict) -> list[str]:
    return [
        "",
        f"## Scoring and top-10 for {sco['users']} users x {sco['items']} items",
        "",
        f"- tailrec (chunked): {sco['tailrec_pairs_per_s']:.3g} user-item pairs/s",
        f"- numpy, whole matrix ({sco['reference_matrix_mb']:.0f} MB) + argpartition: "
        f"{sco['reference_pairs_per_s']:.3g} pairs/s",
        f"- ratio tailrec / reference: {sco['speed_ratio']:.2f}; same top-10 for "
        f"{sco['same_top_k_share']:.1%} of users",
    ]


def _training_lines(rows: list[dict], run: dict) -> list[str]:
    lines = ["", f"## Fitting on the published split ({run['users']} users)", ""]
    if run["max_epochs"] is not None:
        lines += [
            f"tailrec's epochs capped at {run['max_epochs']} per training (a quick check).",
            "",
        ]
    lines += ["| model | fit s | NDCG@10 | epochs | epochs/s | interactions/s |"]
    lines += ["|---|---|---|---|---|---|"]
    for row in rows:
        trained = row["epochs"] is not None
        epochs = f"{row['epochs']} | {row['epochs_per_s']:.2f}" if trained else "- | -"
        rate = f"{row['interactions_per_s']:.0f}" if trained else "-"
        lines.append(
            f"| {row['model']} | {row['fit_seconds']:.1f} | {row['ndcg@10']:.4f} | "
            f"{epochs} | {rate} |"
        )
    lines += ["", "tailrec's epochs count both of its trainings (the probe and the refit)."]
    if not any(row["model"].startswith("lightfm") for row in rows):
        lines.append(
            "LightFM is not installed, so it is not compared (pip install 'tailrec[baselines]')."
        )
    return lines


def _scale_lines(rows: list[dict]) -> list[str]:
    lines = ["", "## One training epoch of the history model on power-law interactions", ""]
    lines += ["| interactions | users | items | loss | epoch s | interactions/s | peak MB |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['interactions']} | {row['users']} | {row['items']} | {row['loss']} | "
            f"{row['epoch_seconds']:.1f} | {row['interactions_per_s']:.0f} | "
            f"{row['peak_memory_mb']:.0f} |"
        )
    return lines


def load_results(folder: str | Path) -> pd.DataFrame:
    """The ``results.json`` that :func:`quality` wrote in ``folder``, as a frame."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise ValueError(
            f"No benchmark results at {path}; run python -m tailrec.bench quality --out {folder}."
        )
    return pd.DataFrame(json.loads(path.read_text()))


def metric_table(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric with (protocol, group) rows and one column per model, in run order."""
    chosen = results[results["metric"] == metric]
    table = chosen.pivot_table(
        index=["protocol", "group"], columns="model", values="value", sort=False
    )
    return table[list(dict.fromkeys(chosen["model"]))]


def against_best_baseline(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """tailrec beside the best baseline of each row, and its lift over it in percent.

    Baselines are the models whose names do not start with "tailrec"; the
    ablations are not baselines.
    """
    table = metric_table(results, metric)
    baselines = table[[c for c in table.columns if not c.startswith("tailrec")]]
    if "tailrec" not in table.columns or baselines.empty:
        raise ValueError("Comparing with baselines needs tailrec and at least one baseline.")
    keep = baselines.notna().any(axis=1)  # a group no baseline was scored on has no best
    table, baselines = table[keep], baselines[keep]
    return pd.DataFrame(
        {
            "tailrec": table["tailrec"],
            "best_baseline": baselines.idxmax(axis=1),
            "baseline_value": baselines.max(axis=1),
            "lift_percent": (table["tailrec"] / baselines.max(axis=1) - 1) * 100,
        }
    )


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of a frame with a (possibly multi-level) index, numbers to 4 decimals."""
    names = [str(n) for n in table.index.names]
    header = "| " + " | ".join(names + [str(c) for c in table.columns]) + " |"
    rule = "|" + "---|" * (len(names) + len(table.columns))
    body = []
    for key, row in table.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in keys] + [
            f"{v:.4f}" if isinstance(v, (float, np.floating)) else str(v) for v in row.to_numpy()
        ]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tailrec.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("quality", help="every model under every protocol")
    run.add_argument("--data-dir", help="folder holding ml-100k/")
    run.add_argument("--out", type=Path, required=True, help="folder for the results")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument(
        "--max-epochs", type=positive_int, help="cap every trained model's epochs (at least 1)"
    )
    run.add_argument(
        "--users", type=positive_int, help="keep this many random users (a quick check)"
    )
    run.add_argument(
        "--models", nargs="+", help="run only these models, space-separated (see the README)"
    )
    cold = commands.add_parser("new-items", help="new films ranked through their text alone")
    cold.add_argument("--data-dir", help="folder holding ml-100k/")
    cold.add_argument("--out", type=Path, required=True, help="folder for the results")
    cold.add_argument("--seed", type=int, default=42)
    cold.add_argument("--max-epochs", type=positive_int, help="cap tailrec's epochs (at least 1)")
    cold.add_argument(
        "--users", type=positive_int, help="keep this many random users (a quick check)"
    )
    cold.add_argument(
        "--new-fraction", type=float, default=0.1, help="share of the films held out as new"
    )
    loop = commands.add_parser("feedback", help="click and purchase rates over rounds")
    loop.add_argument("--data-dir", help="folder holding ml-100k/")
    loop.add_argument("--out", type=Path, required=True, help="folder for the results")
    loop.add_argument("--seed", type=int, default=42)
    loop.add_argument("--max-epochs", type=positive_int, help="cap tailrec's epochs (at least 1)")
    loop.add_argument(
        "--users", type=positive_int, help="keep this many random users (a quick check)"
    )
    loop.add_argument("--rounds", type=positive_int, default=5, help="rounds (default 5)")
    fast = commands.add_parser("speed", help="encoding, scoring and training speed and scale")
    fast.add_argument("--data-dir", help="folder holding ml-100k/ (for the encoding texts)")
    fast.add_argument("--out", type=Path, required=True, help="folder for the results")
    fast.add_argument("--seed", type=int, default=42)
    fast.add_argument(
        "--sizes",
        type=positive_int,
        nargs="+",
        default=list(SCALE_SIZES),
        help="interaction counts for the scale curve (default: 100000 1000000 10000000)",
    )
    fast.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(DEFAULT_PARTS),
        help="what to measure (default: all but course, which runs the course twice)",
    )
    fast.add_argument(
        "--users", type=positive_int, help="keep this many random users (training; quick checks)"
    )
    fast.add_argument(
        "--max-epochs",
        type=positive_int,
        help="cap each of tailrec's two trainings (probe, refit) at N epochs (quick checks)",
    )
    fast.add_argument(
        "--scoring",
        type=positive_int,
        nargs=2,
        default=[5000, 10_000],
        metavar=("USERS", "ITEMS"),
        help="size of the scoring comparison (default: 5000 10000)",
    )
    args = parser.parse_args(argv)
    if args.command == "speed" and args.scoring[1] < 10:
        parser.error("--scoring USERS ITEMS needs at least 10 items (the top 10 is taken).")
    try:
        if args.command == "speed":
            speed(
                args.data_dir,
                args.out,
                tuple(args.sizes),
                args.seed,
                tuple(args.scoring),
                tuple(args.parts),
                args.users,
                args.max_epochs,
            )
        elif args.command == "feedback":
            feedback(
                args.data_dir,
                args.out,
                seed=args.seed,
                max_epochs=args.max_epochs,
                n_users=args.users,
                rounds=args.rounds,
            )
        elif args.command == "new-items":
            new_items(
                args.data_dir,
                args.out,
                seed=args.seed,
                max_epochs=args.max_epochs,
                n_users=args.users,
                new_fraction=args.new_fraction,
            )
        else:
            quality(
                args.data_dir,
                args.out,
                seed=args.seed,
                max_epochs=args.max_epochs,
                n_users=args.users,
                models=tuple(args.models) if args.models else None,
            )
    except (ValueError, OSError) as error:
        print(f"python -m tailrec.bench: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
