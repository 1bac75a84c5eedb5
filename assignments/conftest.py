"""Grading set-up: which submission the tests import, fixtures for the assignment modules.

The tests import each assignment module from one folder, the *submission*:

- ``--assignment-root PATH`` on the pytest command line, else
- the environment variable ``EI_ASSIGNMENT_ROOT``, else
- ``assignments/starter`` (a student checking their own work in place).

Each test file ``test_aN_*.py`` belongs to assignment ``aN``. At the end of a run a
table lists, per assignment, how many tests passed. Hidden tests written by a teacher
use the same fixtures when they sit anywhere under ``assignments/`` (for example in
``assignments/hidden/``) and follow the same file naming.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Callable

import matplotlib
import pytest

# Select the non-interactive backend before any test imports pyplot.
matplotlib.use("Agg")

from ei_tutorial.assignments import ROOT_ENV_VAR, load_assignment  # noqa: E402
from ei_tutorial.models import available_neurons, available_variants, unregister_neuron, unregister_variant  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parent / "starter"
_ASSIGNMENT_OF_FILE = re.compile(r"test_(a\d+)_")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--assignment-root",
        default=None,
        metavar="PATH",
        help=(
            "folder containing the assignment modules to grade (a1_adaptive_lif.py, ...); "
            f"default: ${ROOT_ENV_VAR}, else assignments/starter"
        ),
    )


def _submission_folder(config: pytest.Config) -> Path:
    chosen = config.getoption("--assignment-root") or os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def pytest_report_header(config: pytest.Config) -> str:
    return f"assignment submission: {_submission_folder(config)}"


@pytest.fixture(scope="session")
def assignment_root(pytestconfig: pytest.Config) -> Path:
    """The submission folder the tests import from."""
    folder = _submission_folder(pytestconfig)
    if not folder.is_dir():
        pytest.fail(f"submission folder {folder} does not exist; pass --assignment-root PATH", pytrace=False)
    return folder


def _module_fixture(name: str):
    @pytest.fixture(scope="session")
    def fixture(assignment_root: Path) -> ModuleType:
        return load_assignment(name, assignment_root)

    fixture.__doc__ = f"The submission's {name} module."
    return fixture


adaptive_lif = _module_fixture("a1_adaptive_lif")
divisive_offset = _module_fixture("a2_divisive_offset")
depthwise_init = _module_fixture("a3_depthwise_init")
inhibition_study = _module_fixture("a4_inhibition_study")


@pytest.fixture(autouse=True)
def restore_model_registry():
    """Unregister the neuron models and variants that a test registered."""
    neurons, variants = set(available_neurons()), set(available_variants())
    yield
    for name in set(available_neurons()) - neurons:
        unregister_neuron(name)
    for name in set(available_variants()) - variants:
        unregister_variant(name)


@pytest.fixture
def require_mnist() -> Callable[[], tuple]:
    """A function returning MNIST's ``(train, heldout)`` datasets, or skipping the test.

    Tests call it after they have exercised the student's code, so that unfinished code
    fails the test even where MNIST is missing.
    """

    def load() -> tuple:
        from ei_tutorial.data import DatasetNotFoundError, load_datasets

        try:
            return load_datasets("mnist")
        except DatasetNotFoundError as error:
            pytest.skip(f"MNIST is not available ({error}); set EI_TUTORIAL_DATA to a folder holding it")

    return load


def _assignment_of(nodeid: str) -> str:
    match = _ASSIGNMENT_OF_FILE.search(nodeid.split("::")[0])
    return match.group(1) if match else "other"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    # One outcome per test: a failure or error in any phase outranks a skip, a skip a pass.
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}
    outcomes: dict[str, str] = {}
    for outcome in rank:
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if nodeid and rank[outcome] >= rank.get(outcomes.get(nodeid, "passed"), 0):
                outcomes[nodeid] = "failed" if outcome == "error" else outcome
    if not outcomes:
        return
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for nodeid, outcome in outcomes.items():
        counts[_assignment_of(nodeid)][outcome] += 1
    terminalreporter.section("assignment scores")
    terminalreporter.write_line(f"submission: {_submission_folder(config)}")
    for assignment in sorted(counts):
        tally = counts[assignment]
        total = sum(tally.values())
        extra = ", ".join(f"{tally[key]} {key}" for key in ("failed", "skipped") if tally[key])
        line = f"{assignment}: {tally['passed']}/{total} tests passed"
        terminalreporter.write_line(line + (f" ({extra})" if extra else ""))
