"""The papermill runner and the ``tailrec`` command, on tiny notebooks made in tmp_path.

The real course notebooks take minutes; every notebook run here is a few
lines executed by the ``python3`` kernel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import nbformat
import pytest

from tailrec import cli, runner
from tailrec.runner import (
    NotebookError,
    check_parameters,
    course_notebooks,
    notebook_parameters,
    parse_params,
    run_course,
    summary_lines,
)

GOOD = "00_good.ipynb"
BAD = "01_bad.ipynb"

WRITE_FIGURES = """\
import json, pathlib
pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)
x = seed + 1
(pathlib.Path(output_dir) / "00_good.json").write_text(json.dumps({"summary": {"x": x}}))
"""


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def good_notebook(tmp_path, write_notebook) -> Path:
    return write_notebook(
        tmp_path / "src" / GOOD, "seed = 1\noutput_dir = 'outputs'", WRITE_FIGURES
    )


@pytest.fixture
def course_folder(tmp_path, write_notebook, good_notebook) -> Path:
    """Two notebooks: the first writes its figures, the second raises in its last cell."""
    write_notebook(
        tmp_path / "src" / BAD,
        "seed = 1\nsmall = False",
        "y = 2",
        "raise RuntimeError('boom from the second notebook')",
        "z = 3",
    )
    (tmp_path / "src" / "notes.ipynb").write_text("{}")  # not numbered: ignored
    return tmp_path / "src"


# ---------------------------------------------------------------- parameters


def test_parse_params_reads_literals_and_keeps_text():
    assert parse_params(["epochs=2", "small=True", "name=abc"]) == {
        "epochs": 2,
        "small": True,
        "name": "abc",
    }
    assert parse_params(["lr=5e-3", "dims=[16, 32]", "empty=", " seed = 7"]) == {
        "lr": 5e-3,
        "dims": [16, 32],
        "empty": "",
        "seed": 7,
    }
    assert parse_params(["expr=a=b", "quoted='x y'", "none=None"]) == {
        "expr": "a=b",
        "quoted": "x y",
        "none": None,
    }
    assert parse_params([]) == {}
    assert parse_params(["epochs=1", "epochs=3"]) == {"epochs": 3}


@pytest.mark.parametrize("bad", ["epochs", "=2", "  =2", ""])
def test_parse_params_rejects_malformed_pairs(bad):
    with pytest.raises(ValueError, match="name=value"):
        parse_params([bad])


def test_parse_params_never_raises_anything_but_value_error():
    for pair in ["x={[]: 1}", "x={{1}}"]:
        with contextlib.suppress(ValueError):
            parse_params([pair])


def test_notebook_parameters_and_check(course_folder):
    notebooks = course_notebooks(course_folder)
    assert [p.name for p in notebooks] == [GOOD, BAD]
    assert notebook_parameters(notebooks[0]) == {"seed", "output_dir"}
    check_parameters(notebooks, {"seed": 3, "small": True})
    check_parameters(notebooks, {})
    with pytest.raises(ValueError, match="sed") as error:
        check_parameters(notebooks, {"sed": 3})
    assert "seed" in str(error.value)  # the message lists the accepted names


def test_course_notebooks_needs_numbered_notebooks(tmp_path):
    with pytest.raises(ValueError, match="No numbered notebooks"):
        course_notebooks(tmp_path)


# ---------------------------------------------------------------- running


def test_run_course_writes_copies_and_figures(tmp_path, good_notebook):
    source = digest(good_notebook.parent)
    out = tmp_path / "run"
    lines = []
    results = run_course(
        out=out,
        params={"seed": 41},
        notebooks=[good_notebook],
        echo=lambda *a, **k: lines.append(a),
    )
    assert [r.name for r in results] == ["00_good"]
    assert results[0].output == out / GOOD and results[0].output.is_file()
    assert results[0].figures == {"summary": {"x": 42}}  # the parameter reached the notebook
    assert (out / "outputs" / "00_good.json").is_file()
    executed = nbformat.read(results[0].output, as_version=4)
    assert any("seed = 41" in cell.source for cell in executed.cells)
    assert digest(good_notebook.parent) == source  # the source is untouched
    assert any("x = 42" in line for line in summary_lines(results))
    assert lines  # progress was reported through echo


def test_run_course_reports_the_failing_notebook(tmp_path, course_folder):
    source = digest(course_folder)
    out = tmp_path / "run"
    with pytest.raises(NotebookError) as caught:
        run_course(out=out, notebooks=course_notebooks(course_folder), echo=lambda *a, **k: None)
    error = caught.value
    assert error.notebook == BAD
    assert BAD in str(error) and "cell" in str(error)
    assert "boom from the second notebook" in str(error)
    assert error.cell is not None
    # The first notebook ran completely; the partial copy of the second is kept.
    assert (out / GOOD).is_file()
    assert error.output == out / BAD and error.output.is_file()
    partial = nbformat.read(error.output, as_version=4)
    outputs = [o for cell in partial.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any(o.get("ename") == "RuntimeError" for o in outputs)
    # The cell after the failure never ran.
    last = next(c for c in partial.cells if c.cell_type == "code" and c.source == "z = 3")
    assert last.execution_count is None
    # The sources were never modified, and nothing was written beside them.
    assert digest(course_folder) == source


def test_notebook_error_names_the_failing_cell_by_its_code(tmp_path, course_folder):
    with pytest.raises(NotebookError) as caught:
        run_course(
            out=tmp_path / "run",
            notebooks=course_notebooks(course_folder),
            echo=lambda *a, **k: None,
        )
    message = str(caught.value)
    assert "raise RuntimeError('boom from the second notebook')" in message
    assert "In [" in message
    partial = nbformat.read(caught.value.output, as_version=4)
    failing = [c for c in partial.cells if c.cell_type == "code" and "boom" in c.source]
    assert any(o.get("output_type") == "error" for o in failing[0].outputs)


def test_run_course_checks_parameters_before_running(tmp_path, course_folder):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="bogus"):
        run_course(out=out, params={"bogus": 1}, notebooks=course_notebooks(course_folder))
    assert not out.exists()  # nothing ran, nothing was created


def test_run_course_refuses_a_non_empty_run_directory(tmp_path, good_notebook):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("earlier results")
    with pytest.raises(ValueError, match="not empty"):
        run_course(out=out, notebooks=[good_notebook])
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_new_run_dir_is_fresh(tmp_path):
    first = runner.new_run_dir(tmp_path)
    first.mkdir()
    second = runner.new_run_dir(tmp_path)
    assert second != first and not second.exists()
    assert second.parent == tmp_path


# ---------------------------------------------------------------- the command


@pytest.fixture
def tiny_course(monkeypatch, course_folder, good_notebook):
    """Point the command at the tiny notebooks instead of the real course."""

    def use(*names: str) -> None:
        chosen = [course_folder / name for name in names]
        monkeypatch.setattr(runner, "course_notebooks", lambda *args, **kwargs: chosen)

    return use


def test_cli_unknown_parameter_exits_2(tmp_path, tiny_course, capsys):
    tiny_course(GOOD, BAD)
    code = cli.main(["run", "--out", str(tmp_path / "run"), "--param", "bogus=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "tailrec: error:" in err and "bogus" in err
    assert not (tmp_path / "run").exists()


def test_cli_malformed_parameter_exits_2(tmp_path, tiny_course, capsys):
    tiny_course(GOOD)
    assert cli.main(["run", "--out", str(tmp_path / "run"), "--param", "epochs"]) == 2
    assert "name=value" in capsys.readouterr().err


def test_cli_success_prints_the_summary(tmp_path, tiny_course, capsys):
    tiny_course(GOOD)
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--param", "seed=9"]) == 0
    printed = capsys.readouterr().out
    assert "x = 10" in printed
    assert str(out) in printed
    assert json.loads((out / "outputs" / "00_good.json").read_text()) == {"summary": {"x": 10}}


def test_cli_failing_notebook_exits_1(tmp_path, tiny_course, capsys):
    tiny_course(GOOD, BAD)
    assert cli.main(["run", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert BAD in err and "boom from the second notebook" in err


def test_cli_debug_shows_the_exception(tmp_path, tiny_course):
    tiny_course(GOOD)
    with pytest.raises(ValueError, match="bogus"):
        cli.main(["--debug", "run", "--out", str(tmp_path / "run"), "--param", "bogus=1"])


def test_cli_argument_parsing(capsys):
    with pytest.raises(SystemExit) as version:
        cli.main(["--version"])
    assert version.value.code == 0
    assert "tailrec 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        cli.main([])
    assert missing.value.code == 2
    args = cli.build_parser().parse_args(
        ["run", "--small", "--param", "a=1", "--param", "b=2", "--data-dir", "/x"]
    )
    assert args.small and args.param == ["a=1", "b=2"] and args.data_dir == "/x"
