"""Run the course notebooks in order with papermill and summarise their figures.

Source notebooks are never overwritten: each run writes executed copies, and
each notebook's JSON figures, into a fresh run directory.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tailrec.data import default_data_dir, ensure_movielens
from tailrec.encoder import CACHE_DIR_ENV

logger = logging.getLogger(__name__)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


class NotebookError(RuntimeError):
    """A cell of a course notebook raised; names the notebook and the cell."""

    def __init__(self, notebook: str, cell: str, error: str, output: Path) -> None:
        super().__init__(
            f"{notebook} failed in {cell}: {error}. "
            f"The partly executed notebook is kept in {output}."
        )
        self.notebook, self.cell, self.output = notebook, cell, output


def describe_cell(source: str, execution_count: int | None) -> str:
    """Name a cell the way a reader finds it: its execution count and its first code line."""
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    first = lines[0].strip() if lines else "(empty)"
    if len(first) > 60:
        first = first[:57] + "..."
    count = f"In [{execution_count}] " if execution_count is not None else ""
    return f"the cell {count}starting `{first}`"


@dataclass
class NotebookResult:
    name: str
    output: Path
    seconds: float
    figures: dict[str, Any]


def course_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``00_*.ipynb`` ...) in order."""
    notebooks = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(
            f"No numbered notebooks found in {folder}; run from a tailrec source checkout."
        )
    return notebooks


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["epochs=2", "small=True"]`` into ``{"epochs": 2, "small": True}``.

    Values are read as Python literals when they are one, otherwise kept as text.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"Parameter {pair!r} is not of the form name=value, e.g. epochs=2.")
        try:
            params[name.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            params[name.strip()] = raw
    return params


def notebook_parameters(notebook: Path) -> set[str]:
    """Names defined in the notebook's ``parameters`` cell."""
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def check_parameters(notebooks: list[Path], params: dict[str, Any]) -> set[str]:
    """Refuse a parameter that no notebook defines, before anything runs.

    Returns the names the notebooks accept.
    """
    known: set[str] = set()
    for notebook in notebooks:
        known |= notebook_parameters(notebook)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(unknown)}; "
            f"the notebooks accept: {', '.join(sorted(known))}."
        )
    return known


def check_values(params: dict[str, Any]) -> None:
    """Refuse parameter values the course cannot use, e.g. ``small=false`` (a string)."""
    from tailrec.course import CourseSettings

    fields = {f.name for f in dataclasses.fields(CourseSettings)}
    CourseSettings(**{name: value for name, value in params.items() if name in fields})
    output_dir = params.get("output_dir", "outputs")
    if not (isinstance(output_dir, str) and output_dir):
        raise ValueError(f"output_dir must be the path of a folder, got {output_dir!r}.")


def refuse_non_empty(folder: Path, what: str, fix: str) -> None:
    """Nothing a user made is overwritten: an existing, non-empty folder is refused."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        kind = "is not empty" if folder.is_dir() else "is a file"
        raise ValueError(f"{what} {folder} {kind}; {fix}.")


def new_run_dir(base: Path = Path("runs")) -> Path:
    """A fresh ``runs/<timestamp>`` folder (suffixed if that name is taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = base / stamp, 1
    while candidate.exists():
        candidate, n = base / f"{stamp}-{n}", n + 1
    return candidate


def run_course(
    out: Path | None = None,
    params: dict[str, Any] | None = None,
    small: bool = False,
    notebooks: list[Path] | None = None,
    echo: Callable[..., None] = print,
) -> list[NotebookResult]:
    """Execute the notebooks in order into ``out``; raise :class:`NotebookError` on error."""
    notebooks = notebooks or course_notebooks()
    params = dict(params or {})
    if small:
        params["small"] = True
    accepted = check_parameters(notebooks, params)
    check_values(params)
    out = Path(out).expanduser() if out is not None else new_run_dir()
    refuse_non_empty(out, "The run directory", "choose a new one with --out")
    if "output_dir" in params:
        refuse_non_empty(Path(params["output_dir"]).expanduser(), "output_dir", "choose a new one")
    # Notebooks run inside notebooks/, so relative paths are resolved against the caller's folder.
    for name in ("data_dir", "output_dir", "benchmark_dir"):
        if isinstance(params.get(name), str):
            params[name] = str(Path(params[name]).expanduser().resolve())
    if "data_dir" in accepted:
        # Fetch (or check) the data once, so a bad data folder is reported before anything runs.
        if params.get("data_dir") is None:
            params["data_dir"] = str(default_data_dir().resolve())
        ensure_movielens(params["data_dir"])
    out.mkdir(parents=True, exist_ok=True)
    params.setdefault("output_dir", str((out / "outputs").resolve()))

    with _absolute_cache_dir():
        return _execute(notebooks, out, params, echo)


@contextlib.contextmanager
def _absolute_cache_dir() -> Iterator[None]:
    """Kernels start in notebooks/; a relative $TAILREC_CACHE_DIR must mean the caller's folder."""
    before = os.environ.get(CACHE_DIR_ENV)
    if before:
        os.environ[CACHE_DIR_ENV] = str(Path(before).expanduser().resolve())
    try:
        yield
    finally:
        if before:
            os.environ[CACHE_DIR_ENV] = before


def _execute(
    notebooks: list[Path], out: Path, params: dict[str, Any], echo: Callable[..., None]
) -> list[NotebookResult]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    results = []
    for number, notebook in enumerate(notebooks, start=1):
        target = out / notebook.name
        echo(f"[{number}/{len(notebooks)}] {notebook.stem} ...", flush=True)
        started = time.perf_counter()
        takes = notebook_parameters(notebook)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(target),
                parameters={k: v for k, v in params.items() if k in takes},
                cwd=str(notebook.parent),
                progress_bar=False,
            )
        except PapermillExecutionError as error:
            cell = describe_cell(error.source, error.exec_count)
            reason = f"{error.ename}: {error.evalue}".rstrip(". ")
            raise NotebookError(notebook.name, cell, reason, target) from error
        seconds = time.perf_counter() - started
        figures_file = Path(params["output_dir"]) / f"{notebook.stem}.json"
        figures = json.loads(figures_file.read_text()) if figures_file.is_file() else {}
        results.append(NotebookResult(notebook.stem, target, seconds, figures))
        echo(f"    done in {seconds:.0f} s -> {target}", flush=True)
    return results


def summary_lines(results: list[NotebookResult]) -> list[str]:
    """A one-screen summary: each notebook's ``summary`` figures."""
    lines = ["", "Summary of key figures"]
    for result in results:
        headline = result.figures.get("summary", {})
        text = ", ".join(f"{k} = {_fmt(v)}" for k, v in headline.items())
        lines.append(f"  {result.name:<24} {text}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
