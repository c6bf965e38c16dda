"""The ``tailrec`` command.

``tailrec run`` executes the course notebooks in order into a new run
directory and prints a summary of their key figures.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tailrec import __version__


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
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s"
    )
    from tailrec.runner import NotebookError

    try:
        return _run(args)
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
        print("tailrec: interrupted; the partly executed notebook is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
