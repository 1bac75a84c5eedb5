"""Checks that every numbered chapter has the course's shape: objectives, exercises, summary.

A chapter is any ``book/NN_*.ipynb``. It needs a ``## Learning objectives`` heading, at
least two ``### Exercise`` headings each followed by a ``:::{dropdown} Solution`` before
the next heading, and a ``## Summary`` heading.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO_ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
CHAPTER_IDS = [path.name for path in CHAPTERS]

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
SOLUTION = re.compile(r"^(:{3,}|`{3,})\{dropdown\}\s+Solution\b")


def _markdown_lines(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    lines: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            lines.extend(cell.source.splitlines())
    return lines


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """Return ``(line index, level, text)`` of every Markdown heading outside code fences."""
    headings = []
    in_fence = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith("```") and not SOLUTION.match(line.strip()):
            in_fence = not in_fence
            continue
        match = HEADING.match(line)
        if match and not in_fence:
            headings.append((index, len(match.group(1)), match.group(2)))
    return headings


def test_book_has_chapters():
    assert CHAPTERS, "no book/NN_*.ipynb chapters found"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_has_learning_objectives(path):
    titles = [(level, text) for _, level, text in _headings(_markdown_lines(path))]
    assert (2, "Learning objectives") in titles, f"{path.name} has no '## Learning objectives' heading"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_has_summary(path):
    titles = [(level, text) for _, level, text in _headings(_markdown_lines(path))]
    assert (2, "Summary") in titles, f"{path.name} has no '## Summary' heading"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_exercises_have_solutions(path):
    lines = _markdown_lines(path)
    headings = _headings(lines)
    exercises = [(position, index, text) for position, (index, level, text) in enumerate(headings)
                 if level == 3 and text.startswith("Exercise")]
    assert len(exercises) >= 2, (
        f"{path.name} has {len(exercises)} '### Exercise' headings; each chapter needs at least two"
    )
    for position, index, text in exercises:
        end = headings[position + 1][0] if position + 1 < len(headings) else len(lines)
        body = lines[index + 1:end]
        assert any(SOLUTION.match(line.strip()) for line in body), (
            f"{path.name}: '### {text}' is not followed by a ':::{{dropdown}} Solution' block "
            "before the next heading"
        )
