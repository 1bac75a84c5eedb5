"""Write the starter modules from the reference solutions, or check that they match.

A reference solution marks the code that students write with two comment lines::

    # BEGIN SOLUTION A1 part 1: adaptive_lif_step
    ...
    # END SOLUTION

The starter module is the solution with each marked block replaced by a TODO comment
and ``raise NotImplementedError("A1 part 1 (adaptive_lif_step) is not implemented
yet")`` at the indentation of the BEGIN line. Everything else (imports, docstrings,
given code) is copied unchanged, so starter and solution cannot drift apart.

Usage, from the repository root::

    python assignments/make_starters.py          # rewrite assignments/starter/*.py
    python assignments/make_starters.py --check  # exit 1 if a starter is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "solutions"
STARTERS = HERE / "starter"

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION (?P<part>[A-Za-z0-9]+ part \d+): (?P<target>.+?)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


def make_starter(solution: str, filename: str = "<solution>") -> str:
    """Return the starter text for the text of a reference solution.

    Raises:
        ValueError: If a BEGIN marker is unclosed or nested, or an END marker has no
            BEGIN, naming the file and line.
    """
    out: list[str] = []
    open_at = None
    for number, line in enumerate(solution.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_at is not None:
                raise ValueError(f"{filename}:{number}: BEGIN SOLUTION inside the block opened at line {open_at}")
            open_at = number
            indent, part, target = begin["indent"], begin["part"], begin["target"]
            out.append(f"{indent}# TODO({part}): {target}. Replace the raise below with your code.\n")
            out.append(f'{indent}raise NotImplementedError("{part} ({target}) is not implemented yet")\n')
        elif end:
            if open_at is None:
                raise ValueError(f"{filename}:{number}: END SOLUTION without a BEGIN SOLUTION")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ValueError(f"{filename}:{open_at}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report starters that differ; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for solution in sorted(SOLUTIONS.glob("a[0-9]*_*.py")):
        text = make_starter(solution.read_text(encoding="utf-8"), str(solution))
        starter = STARTERS / solution.name
        if starter.is_file() and starter.read_text(encoding="utf-8") == text:
            continue
        stale.append(starter)
        if not args.check:
            STARTERS.mkdir(exist_ok=True)
            starter.write_text(text, encoding="utf-8")
            print(f"wrote {starter}")
    if args.check and stale:
        print("out of date (run python assignments/make_starters.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
