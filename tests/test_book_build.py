"""Build the whole book with Sphinx warnings as errors, without executing the chapters.

nbval executes the chapters separately (``pytest --nbval-lax book``), so this build turns
execution off through a temporary copy of ``_config.yml`` and checks only that every page
renders without a warning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    config["execute"]["execute_notebooks"] = "off"
    config_path = tmp_path / "_config.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    command = [
        sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(REPO_ROOT),
        "--config", str(config_path),
        "--path-output", str(tmp_path / "out"),
        "--warningiserror", "--keep-going", "--all",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    log = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, f"jupyter-book build failed:\n{log}"

    html = tmp_path / "out" / "_build" / "html"
    assert (html / "index.html").is_file()
    for page in _toc_files():
        assert (html / f"{Path(page).with_suffix('')}.html").is_file(), f"{page} was not rendered"
    assert (html / "book" / "01_lif_neuron.html").is_file()
    assert "lif_step" in (html / "book" / "api.html").read_text(encoding="utf-8")
