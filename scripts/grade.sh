#!/usr/bin/env bash
# Grade the course assignments: run the public assignment tests, and any hidden tests
# in assignments/hidden/, against one folder of assignment modules.
#
# Usage: bash scripts/grade.sh [SUBMISSION] [PYTEST_ARGS...]
#   SUBMISSION   folder containing a1_adaptive_lif.py ... a4_inhibition_study.py
#                (default: assignments/starter, a student's own working copy)
#   PYTEST_ARGS  passed on to pytest, e.g. -k a2 to grade one assignment,
#                --junitxml=grades.xml for a machine-readable report
#
# Uses .venv/bin/python when it exists (bash scripts/run-tests.sh creates it), else
# $PYTHON or python3 with ei_tutorial installed. Exit status: 0 if every test passed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

submission="assignments/starter"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    submission="$1"
    shift
fi
if [ ! -d "$submission" ]; then
    echo "error: submission folder '$submission' does not exist; pass the folder that contains the assignment modules." >&2
    exit 2
fi
submission="$(cd "$submission" && pwd)"

if [ -x "$REPO_ROOT/.venv/bin/python" ]; then
    python="$REPO_ROOT/.venv/bin/python"
else
    python="${PYTHON:-python3}"
fi
if ! "$python" -c 'import ei_tutorial' 2>/dev/null; then
    echo "error: $python cannot import ei_tutorial; run 'bash scripts/run-tests.sh' once to set up .venv, or 'pip install -e .'" >&2
    exit 2
fi

cd "$REPO_ROOT"
test_paths=(assignments/tests)
if [ -d assignments/hidden ]; then
    test_paths+=(assignments/hidden)
fi
exec "$python" -m pytest "${test_paths[@]}" --assignment-root "$submission" -p no:cacheprovider "$@"
