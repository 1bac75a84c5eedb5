#!/usr/bin/env bash
# Build the book into _build/html, executing every chapter; any warning or cell
# error fails the build. Extra arguments go to `jupyter-book build`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$REPO_ROOT"

echo "EI_TUTORIAL_DATA=${EI_TUTORIAL_DATA:-<unset: chapters download their data>}"
jupyter-book build . --all --warningiserror --keep-going "$@"
echo "Built book: $REPO_ROOT/_build/html/index.html"
