"""``python -m ei_tutorial.train``: train a spiking network from a YAML config (see ``--help``)."""

import sys

from ei_tutorial.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
