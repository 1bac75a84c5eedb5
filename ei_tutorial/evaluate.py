"""``python -m ei_tutorial.evaluate``: held-out accuracy and firing rates of a checkpoint (see ``--help``)."""

import sys

from ei_tutorial.training.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
