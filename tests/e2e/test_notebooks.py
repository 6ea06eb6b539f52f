"""The notebooks run top to bottom on the tiny configuration."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_inside_a_copy.ipynb",
                                           "03_tables.ipynb"]


@pytest.mark.timeout(480)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACER_OUTPUT_DIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    # The pipeline cells are by far the longest: 03_tables' four tiny runs took 81 s in one suite
    # and 123 s in another on the same two cores, so a cell gets 240 s.
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(tmp_path.rglob("metrics.json"))
