"""Run the course notebooks in order with papermill and summarise their figures.

Source notebooks are never overwritten: each run writes executed copies, and
each notebook's JSON figures, into a fresh run directory.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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


def check_parameters(notebooks: list[Path], params: dict[str, Any]) -> None:
    """Refuse a parameter that no notebook defines, before anything runs."""
    known: set[str] = set()
    for notebook in notebooks:
        known |= notebook_parameters(notebook)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(unknown)}; "
            f"the notebooks accept: {', '.join(sorted(known))}."
        )


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
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebooks = notebooks or course_notebooks()
    params = dict(params or {})
    if small:
        params["small"] = True
    check_parameters(notebooks, params)
    out = Path(out) if out is not None else new_run_dir()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"The run directory {out} is not empty; choose a new one with --out.")
    out.mkdir(parents=True, exist_ok=True)
    params.setdefault("output_dir", str(out / "outputs"))
    # Notebooks run inside notebooks/, so relative paths are resolved against the caller's folder.
    for name in ("data_dir", "output_dir"):
        if isinstance(params.get(name), str):
            params[name] = str(Path(params[name]).expanduser().resolve())

    results = []
    for number, notebook in enumerate(notebooks, start=1):
        target = out / notebook.name
        echo(f"[{number}/{len(notebooks)}] {notebook.stem} ...", flush=True)
        started = time.perf_counter()
        accepted = notebook_parameters(notebook)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(target),
                parameters={k: v for k, v in params.items() if k in accepted},
                cwd=str(notebook.parent),
                progress_bar=False,
            )
        except PapermillExecutionError as error:
            cell = describe_cell(error.source, error.exec_count)
            raise NotebookError(
                notebook.name, cell, f"{error.ename}: {error.evalue}", target
            ) from error
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
