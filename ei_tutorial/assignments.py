"""Helpers for the course assignments: find and load a student's module, run unfinished parts.

The assignments live in the repository, not in the installed package:
``assignments/starter/`` holds the modules that students complete,
``assignments/solutions/`` the reference solutions and ``assignments/tests/`` the public
tests. A student module is a single Python file, such as ``a1_adaptive_lif.py``, that
imports ``ei_tutorial`` and extends it.

Where :func:`load_assignment` looks for the module, in this order:

1. the ``root`` argument;
2. the folder in the environment variable ``EI_ASSIGNMENT_ROOT`` (relative paths are
   taken from the current directory);
3. ``assignments/starter`` in the current directory or the nearest parent that has one,
   which is the repository root when a notebook runs from ``book/assignments/``.

The starter notebooks wrap each part that calls student code in :func:`skip_unfinished`,
so a part whose functions still raise ``NotImplementedError`` is reported and skipped
instead of stopping the notebook. Setting ``EI_ASSIGNMENT_STRICT=1`` turns the skip off,
which is how a teacher checks that a notebook runs from start to end on the solutions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator, Optional, Union

ROOT_ENV_VAR = "EI_ASSIGNMENT_ROOT"
STRICT_ENV_VAR = "EI_ASSIGNMENT_STRICT"

#: The assignment modules, in course order.
ASSIGNMENTS = (
    "a1_adaptive_lif",
    "a2_divisive_offset",
    "a3_depthwise_init",
    "a4_inhibition_study",
)

_STARTER_FOLDER = Path("assignments") / "starter"
_CLONE_HINT = (
    "Run the notebook from a clone of the course repository (on Colab, run the cell that "
    f"clones it), or set {ROOT_ENV_VAR} to the folder that holds the assignment modules"
)


def find_assignment_root(start: Union[str, os.PathLike, None] = None) -> Path:
    """Return the folder that contains the student's assignment modules.

    Args:
        start: Folder to search from; the current directory when None. Ignored when
            ``EI_ASSIGNMENT_ROOT`` is set.

    Returns:
        The absolute path of ``EI_ASSIGNMENT_ROOT`` if it is set, otherwise of
        ``assignments/starter`` in ``start`` or its nearest parent that has one.

    Raises:
        FileNotFoundError: If ``EI_ASSIGNMENT_ROOT`` is not a folder, or no
            ``assignments/starter`` folder is found.
    """
    configured = os.environ.get(ROOT_ENV_VAR, "").strip()
    if configured:
        root = Path(configured).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{ROOT_ENV_VAR}={configured!r} is not a folder; {_CLONE_HINT}")
        return root
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / _STARTER_FOLDER).is_dir():
            return folder / _STARTER_FOLDER
    raise FileNotFoundError(f"no {_STARTER_FOLDER} folder in {here} or any folder above it. {_CLONE_HINT}")


def load_assignment(name: str, root: Union[str, os.PathLike, None] = None) -> ModuleType:
    """Import the assignment module ``name`` from a folder of student modules.

    The file is read again on every call, so a notebook that reruns this call picks up
    the student's latest edits. The module is stored in ``sys.modules`` under ``name``,
    replacing an earlier load.

    Args:
        name: Module name without ``.py``, for example ``"a1_adaptive_lif"``.
        root: Folder that contains the module; found by :func:`find_assignment_root` when None.

    Returns:
        The imported module.

    Raises:
        ValueError: If ``name`` is not a plain module name.
        FileNotFoundError: If the folder or the file ``name.py`` in it does not exist.
        Exception: Whatever the module raises while it is imported (for example a
            ``SyntaxError`` in the student's code).
    """
    if not name.isidentifier():
        raise ValueError(f"assignment name must be a Python module name such as 'a1_adaptive_lif', got {name!r}")
    folder = Path(root).expanduser().resolve() if root is not None else find_assignment_root()
    path = folder / f"{name}.py"
    if not path.is_file():
        present = sorted(p.stem for p in folder.glob("a[0-9]*_*.py")) if folder.is_dir() else []
        raise FileNotFoundError(
            f"assignment module {path} does not exist (modules in {folder}: {present or 'none'}); "
            f"copy {name}.py from assignments/starter into that folder"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def strict_mode() -> bool:
    """Return whether ``EI_ASSIGNMENT_STRICT`` is set to 1, true, yes or on (case-insensitive)."""
    return os.environ.get(STRICT_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def skip_unfinished(part: str, *, strict: Optional[bool] = None) -> Iterator[None]:
    """Run a block of notebook code, and skip the rest of it if student code is unfinished.

    A ``NotImplementedError`` raised inside the block ends the block, and a note with
    ``part`` and the error's message is printed to standard output, where a notebook
    reader sees it. The notebook then goes on with the next cell. Any other exception
    propagates.

    NOTE: a ``NotImplementedError`` from library code called inside the block is
    skipped the same way; only its message distinguishes it from a student's TODO.

    Args:
        part: Name of the part the block exercises, shown in the note.
        strict: Re-raise instead of skipping. None reads ``EI_ASSIGNMENT_STRICT``.

    Raises:
        NotImplementedError: In strict mode, when the block raises it.
    """
    strict = strict_mode() if strict is None else strict
    try:
        yield
    except NotImplementedError as error:
        if strict:
            raise
        reason = str(error) or "a function raised NotImplementedError"
        print(
            f"Skipped {part}: {reason}.\n"
            "Complete that part in the assignment module, rerun the cell that loads the module, "
            "then rerun this cell."
        )
