#!/usr/bin/env bash
# Run the whole test suite, unit tests and chapter notebooks, in one pytest call.
# Extra arguments go to pytest, for example: bash scripts/run-tests.sh -x -k data
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO_ROOT"

echo "EI_TUTORIAL_DATA=${EI_TUTORIAL_DATA:-<unset: data tests are skipped or download>}"
status=0
python -m pytest --nbval-lax tests book "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests (exit code 5); check the paths and -k/-m filters." >&2
    exit 1
fi
exit "$status"
