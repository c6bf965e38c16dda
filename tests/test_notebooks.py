"""The course runs end to end: every notebook executes in small mode and writes its figures.

nbval, run separately by ``make test``, then re-executes the committed notebooks
in full and compares the outputs of their checked cells.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from tailrec.cli import main
from tailrec.runner import course_notebooks, notebook_parameters, run_course

EXPECTED = [
    "00_background",
    "01_architecture",
    "02_feature_extraction",
    "03_bilinear_model_math",
    "04_training",
    "05_results",
    "06_applications",
]
PARAMETERS = {"data_dir", "seed", "epochs", "small", "output_dir"}


def test_the_seven_notebooks_follow_the_template():
    notebooks = course_notebooks()
    assert [p.stem for p in notebooks] == EXPECTED
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one parameters cell"
        extra = {"benchmark_dir", "benchmark_users"} if path.stem == "05_results" else set()
        assert notebook_parameters(path) == PARAMETERS | extra, path.name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "from tailrec" in code, f"{path.name} must import the package"
        assert "write_figures(" in code, f"{path.name} must write its key figures"
        assert "## 1." in "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "small"
    lines: list[str] = []
    results = run_course(out=out, small=True, echo=lambda *a, **k: lines.append(" ".join(a)))
    return out, results, lines


@pytest.mark.slow
def test_small_run_executes_every_notebook(small_run):
    out, results, lines = small_run
    assert [r.name for r in results] == EXPECTED
    assert sum(line.startswith("[") for line in lines) == len(EXPECTED)
    for result in results:
        executed = nbformat.read(result.output, as_version=4)
        errors = [
            o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"
        ]
        assert not errors, result.name
        figures = json.loads((out / "outputs" / f"{result.name}.json").read_text())
        assert figures["summary"], f"{result.name} wrote no summary figures"


@pytest.mark.slow
def test_small_run_figures_make_sense(small_run):
    _, results, _ = small_run
    figures = {r.name: r.figures for r in results}
    assert 0 < figures["00_background"]["summary"]["gini_users"] < 1
    assert figures["03_bilinear_model_math"]["summary"]["model_gradient_matches"] is True
    assert figures["04_training"]["reload_max_difference"] == 0.0
    # Even four epochs on 150 users beat random scores by a wide margin.
    ranking = figures["05_results"]["ranking"]
    assert ranking["tailrec/test"]["ndcg"] > 2 * ranking["random/test"]["ndcg"]


@pytest.mark.slow
def test_source_notebooks_are_never_overwritten(small_run):
    out, results, _ = small_run
    for result in results:
        assert result.output.parent == out
    assert all(p.parent.name == "notebooks" for p in course_notebooks())


def test_cli_refuses_a_misspelt_parameter(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "run"), "--param", "epoch=2"])
    assert code == 2
    message = capsys.readouterr().err
    assert "epoch" in message and "epochs" in message
    assert not (tmp_path / "run").exists(), "nothing may run before the parameters are checked"
