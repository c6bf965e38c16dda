"""The ``tailrec`` command.

``tailrec run`` executes the course notebooks in order into a new run
directory and prints a summary of their key figures. ``tailrec fit``,
``tailrec recommend`` and ``tailrec evaluate`` train the long-tail
recommender on your own interaction logs and serve it (:mod:`tailrec.service`).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from tailrec import __version__
from tailrec.checks import positive_int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tailrec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tailrec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute the course notebooks in order")
    run.add_argument("--out", type=Path, help="run directory (default: runs/<timestamp>)")
    run.add_argument("--small", action="store_true", help="the short version (a couple of minutes)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a notebook parameter, e.g. --param epochs=2 (repeatable)",
    )
    run.add_argument(
        "--data-dir", help="folder holding ml-100k/ (default: $TAILREC_DATA_DIR or data/)"
    )
    _add_fit(commands)
    _add_recommend(commands)
    _add_evaluate(commands)
    return parser


def _add_reading(parser: argparse.ArgumentParser) -> None:
    """How to read an interaction file: its columns, separator and encoding."""
    group = parser.add_argument_group(
        "reading the interaction file (item and user tables are detected on their own)"
    )
    group.add_argument("--user-col", help="user id column (default: user_id, userId, user...)")
    group.add_argument("--item-col", help="item id column (default: item_id, itemId, item...)")
    group.add_argument("--rating-col", help="rating column (default: rating, if present)")
    group.add_argument("--time-col", help="time column: epoch s or ms, or ISO text")
    group.add_argument(
        "--rating-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="the rating scale, e.g. 1 5: ratings outside it are reported and left empty",
    )
    group.add_argument("--sep", help="separator, e.g. , or ; or tab or :: (default: detected)")
    group.add_argument("--encoding", help="text encoding, e.g. latin-1 (default: detected)")
    group.add_argument(
        "--no-header",
        action="store_true",
        help="the file has no header row; name columns by number from 1 (--user-col 1)",
    )


def _add_fit(commands) -> None:
    fit = commands.add_parser("fit", help="train the recommender on your own interaction logs")
    fit.add_argument("--interactions", type=Path, required=True, help="CSV or Parquet file")
    fit.add_argument("--out", type=Path, required=True, help="new folder for the model")
    _add_reading(fit)
    items = fit.add_argument_group("item table (optional)")
    items.add_argument("--items", type=Path, help="CSV or Parquet file, one row per item")
    items.add_argument("--item-id-col", help="its id column (default: the --item-col name)")
    items.add_argument(
        "--item-text-cols", nargs="+", help="columns describing an item (default: all others)"
    )
    items.add_argument(
        "--items-no-header", action="store_true", help="the item table has no header row"
    )
    users = fit.add_argument_group("user table (optional)")
    users.add_argument("--users", type=Path, help="CSV or Parquet file, one row per user")
    users.add_argument("--user-id-col", help="its id column (default: the --user-col name)")
    users.add_argument(
        "--user-cols", nargs="+", help="attribute columns for the profile (default: all others)"
    )
    users.add_argument(
        "--users-no-header", action="store_true", help="the user table has no header row"
    )
    fit.add_argument("--epochs", type=positive_int, help="most training epochs (default: 200)")
    fit.add_argument("--seed", type=int, default=42)
    fit.add_argument("--encoder", help="text encoder (default: all-MiniLM-L6-v2, shipped)")


def _add_recommend(commands) -> None:
    recommend = commands.add_parser("recommend", help="print a user's top items as JSON")
    recommend.add_argument("--model", type=Path, required=True, help="folder from tailrec fit")
    recommend.add_argument("--user", help="a known user's id (exactly as in the logs)")
    recommend.add_argument("--profile", help="a new user's profile text")
    recommend.add_argument(
        "--description", help="a new user's own words about their tastes, matched to item texts"
    )
    recommend.add_argument(
        "--history", nargs="+", default=[], metavar="ITEM_ID", help="a new user's items so far"
    )
    recommend.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    recommend.add_argument(
        "--exclude-seen", action="store_true", help="leave out items the user already has"
    )


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="ranking metrics on a held-out file")
    evaluate.add_argument("--model", type=Path, required=True, help="folder from tailrec fit")
    evaluate.add_argument("--test", type=Path, required=True, help="held-out interactions")
    evaluate.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_reading(evaluate)


def _run(args: argparse.Namespace) -> int:
    from tailrec.runner import parse_params, run_course, summary_lines

    params = parse_params(args.param)
    if args.data_dir:
        params["data_dir"] = str(Path(args.data_dir).resolve())
    results = run_course(out=args.out, params=params, small=args.small)
    for line in summary_lines(results):
        print(line)
    print(f"\nExecuted notebooks and figures are in {results[0].output.parent}")
    return 0


def _separator(value: str | None) -> str | None:
    return {"tab": "\t", "\\t": "\t"}.get(value, value) if value else None


def _read_logs(path: Path, args: argparse.Namespace, stored: dict | None = None):
    """Read an interaction file as the flags say; ``stored`` fills in the fit's column names."""
    from tailrec.logs import Columns, read_interactions

    stored = stored or {}
    columns = Columns(
        args.user_col or stored.get("user"),
        args.item_col or stored.get("item"),
        args.rating_col,
        args.time_col,
    )
    header = not args.no_header
    if stored and not args.no_header and stored.get("header") is False:
        header = False  # the fit's file had none, and its columns are named by number
    return read_interactions(
        path,
        columns,
        _separator(args.sep),
        args.encoding,
        header,
        guess_optional=not stored,  # an evaluation needs neither ratings nor times
        rating_range=_rating_range(args.rating_range),
    )


def _rating_range(values: list[float] | None) -> tuple[float, float] | None:
    if values is None:
        return None
    low, high = values
    if not low <= high:
        raise ValueError(f"--rating-range needs LOW <= HIGH, got {low:g} {high:g}.")
    return low, high


def _fit(args: argparse.Namespace) -> int:
    from tailrec.history_model import HistoryModelConfig
    from tailrec.logs import read_attribute_table
    from tailrec.runner import refuse_non_empty
    from tailrec.service import REPORT_FILE, fit_on_logs, index_logs

    state_dir = args.out / TRAINING_STATE_DIR
    resuming = state_dir.is_dir() and [p.name for p in args.out.iterdir()] == [state_dir.name]
    if not resuming:
        refuse_non_empty(args.out, "The output folder", "choose a new --out folder")
    frame, report, reading = _read_logs(args.interactions, args)
    print(report.text(), flush=True)
    reports = [report]
    item_texts = user_texts = None
    if args.items:
        item_id = args.item_id_col or reading["item"]
        item_texts, item_report = read_attribute_table(
            args.items, item_id, args.item_text_cols, "item", header=not args.items_no_header
        )
        reports.append(item_report)
        print("\n" + item_report.text(), flush=True)
    if args.users:
        user_id = args.user_id_col or reading["user"]
        user_texts, user_report = read_attribute_table(
            args.users, user_id, args.user_cols, "user", header=not args.users_no_header
        )
        reports.append(user_report)
        print("\n" + user_report.text(), flush=True)
    data = index_logs(frame, item_texts, user_texts)
    config = HistoryModelConfig(seed=args.seed)
    if args.epochs is not None:
        config = HistoryModelConfig(seed=args.seed, epochs=args.epochs)
    # Find out now, not after training, whether the folder can be written.
    created = not args.out.exists()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {args.out} cannot be created ({error.strerror}).") from error
    print(
        "\nresuming the interrupted fit..." if resuming else "\ntraining...",
        file=sys.stderr,
        flush=True,
    )
    kwargs = {"encoder": args.encoder} if args.encoder else {}
    try:
        trained = fit_on_logs(data, config=config, reading=reading, state_dir=state_dir, **kwargs)
    except BaseException:
        # What training wrote is kept, so that running the same command again resumes.
        if created and not any(args.out.iterdir()):
            args.out.rmdir()
        raise
    notes = trained.info["notes"]
    summary = "\n\n".join(r.text() for r in reports)
    if notes:
        summary += "\n\nfor the model:\n" + "\n".join(f"  {note}" for note in notes)
        print("\nfor the model:\n" + "\n".join(f"  {note}" for note in notes))
    trained.save(args.out)
    (args.out / REPORT_FILE).write_text(summary + "\n")
    shutil.rmtree(state_dir, ignore_errors=True)
    chosen = trained.info
    print(
        f"\nfitted: {chosen['epochs']} epoch(s), item-item weight {chosen['item_item']:g}, "
        f"prior weight {chosen['prior']:g}, trust count {chosen['trust_count']:g}"
    )
    print(f"model saved in {args.out}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from tailrec.service import TrainedRecommender

    trained = TrainedRecommender.load(args.model)
    if args.user is not None:
        if args.profile is not None or args.history or args.description is not None:
            raise ValueError(
                "--user serves a known user from their own history; --profile, --history and "
                "--description describe a new user. Pass one or the other."
            )
        answer = trained.recommend(args.user, args.k, args.exclude_seen)
    else:
        answer = trained.recommend_new(
            args.profile, args.history, args.k, description=args.description
        )
    print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tailrec.service import TrainedRecommender

    trained = TrainedRecommender.load(args.model)
    # The fit's id columns; the separator and encoding are found afresh for this file.
    frame, report, _ = _read_logs(args.test, args, stored=trained.reading)
    table, notes = trained.evaluate(frame, args.k)
    table = table.round(4)
    if args.json:
        result = {"k": args.k, "metrics": table.to_dict(orient="index"), "notes": notes}
        print(json.dumps(result, indent=2))
        return 0
    print(report.text())
    for note in notes:
        print(f"  {note}")
    print(f"\nmetrics at k = {args.k}:")
    print(table.to_string())
    return 0


# Where an interrupted fit keeps its training state, inside the --out folder.
TRAINING_STATE_DIR = ".training"

COMMANDS = {"run": _run, "fit": _fit, "recommend": _recommend, "evaluate": _evaluate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s"
    )
    from tailrec.runner import NotebookError

    try:
        return COMMANDS[args.command](args)
    except NotebookError as error:
        if args.debug:
            raise
        print(f"tailrec: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as error:
        # Bad input (a value, a path, a folder that cannot be written): exit code 2.
        if args.debug:
            raise
        print(f"tailrec: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = {
            "run": "the partly executed notebook is kept",
            "fit": "run the same command again to resume the fit",
        }.get(args.command, "nothing was saved")
        print(f"tailrec: interrupted; {kept}.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
