# Shared set-up for build-book.sh and run-tests.sh; source it, do not run it.
#
# - Creates .venv at the repository root with $PYTHON (default python3, >= 3.10),
#   or reuses the one that is there.
# - Installs requirements.txt and the package in editable mode, skipping pip when
#   .venv/.ei-tutorial-stamp holds the SHA-256 of requirements.txt + pyproject.toml.
# - Defaults EI_TUTORIAL_DATA to ../shared/data when that folder exists and the
#   variable is unset.
# - Puts .venv/bin first on PATH and prefers the venv's Jupyter kernels.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.ei-tutorial-stamp"

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON="${PYTHON:-python3}"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        echo "error: $PYTHON is missing or older than Python 3.10; set PYTHON=/path/to/python3.10+ and retry." >&2
        exit 1
    fi
    echo "Creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

wanted_hash="$(cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted_hash" ]; then
    echo "Installing requirements.txt and ei_tutorial (editable) into $VENV"
    "$VENV/bin/python" -m pip install --quiet -r "$REPO_ROOT/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --no-deps --editable "$REPO_ROOT"
    echo "$wanted_hash" > "$STAMP"
fi

if [ -z "${EI_TUTORIAL_DATA:-}" ] && [ -d "$REPO_ROOT/../shared/data" ]; then
    EI_TUTORIAL_DATA="$(cd "$REPO_ROOT/../shared/data" && pwd)"
    export EI_TUTORIAL_DATA
fi

export PATH="$VENV/bin:$PATH"
# Look for Jupyter kernels in the venv before ~/.local/share/jupyter, so that
# notebooks run with the venv's Python.
export JUPYTER_PREFER_ENV_PATH=1
