"""Checks on the chapters as stored: no outputs, and the install cell first."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "book").rglob("*.ipynb"))
NOTEBOOKS = [path for path in NOTEBOOKS if ".ipynb_checkpoints" not in path.parts]
NOTEBOOK_IDS = [str(path.relative_to(REPO_ROOT)) for path in NOTEBOOKS]
CHAPTERS = sorted((REPO_ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

# The install cell must read exactly like this, with the repository URL from _config.yml.
INSTALL_CELL = re.compile(
    r"try:\n"
    r"    import ei_tutorial\n"
    r"except ImportError:  # on Colab: install the course library from its repository\n"
    r'    %pip install -q "ei-tutorial @ git\+(?P<url>\S+?)@(?P<branch>[\w.-]+)"'
)


def _config() -> dict:
    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))


def test_book_has_notebooks():
    assert NOTEBOOKS, "no .ipynb files under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{path.name} cell {index} has stored outputs; clear them before committing"
        assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_first_code_cell_installs_library(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code cell"
    match = INSTALL_CELL.fullmatch(code_cells[0].source.strip())
    assert match is not None, f"{path.name}: first code cell is not the install cell:\n{code_cells[0].source}"

    repository = _config()["repository"]
    assert match["url"] == repository["url"]
    assert match["branch"] == repository["branch"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.name for path in CHAPTERS])
def test_chapter_seeds_torch(path):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "torch.manual_seed(" in code, f"{path.name} never calls torch.manual_seed, so its results vary per run"
