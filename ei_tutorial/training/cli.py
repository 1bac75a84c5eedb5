"""Command lines: ``python -m ei_tutorial.train`` and ``python -m ei_tutorial.evaluate``.

Exit status of training: 0 when the run completes, 1 on an error, 128 + the signal
number (130 for Ctrl-C, 143 for SIGTERM) when a signal stopped it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Optional, Sequence

from ei_tutorial.training.checkpoint import CheckpointError
from ei_tutorial.training.config import describe_keys, load_config, shipped_configs

logger = logging.getLogger(__name__)

_TRAIN_EPILOG = """\
overrides: key=value pairs applied after the config file, each value parsed as YAML,
  e.g. epochs=5 widths=[500,300] variant=bn lr=0.05 neuron_kwargs.tau_mem=3

config keys, defaults and meanings [units]:
{keys}

shipped configs: {shipped}

examples:
  python -m ei_tutorial.train --config mnist_mlp
  python -m ei_tutorial.train --config mnist_mlp_depth8 variant=bn epochs=3
  python -m ei_tutorial.train --config mnist_mlp --resume
  torchrun --nproc_per_node 2 -m ei_tutorial.train --config mnist_mlp device=cpu
"""


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def train_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m ei_tutorial.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m ei_tutorial.train",
        description="Train a spiking network (E-I, batch-norm or plain variant) from a YAML config.",
        epilog=_TRAIN_EPILOG.format(keys=describe_keys(), shipped=", ".join(shipped_configs())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE_OR_NAME", help="YAML file or shipped config name (default: built-in defaults)")
    parser.add_argument("--resume", action="store_true", help="continue the run from out_dir/name/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in the same folder")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m ei_tutorial.train``; return the exit status."""
    args = train_parser().parse_args(argv)
    _configure_logging(args.log_level)
    from ei_tutorial.training.loop import NonFiniteLossError, train

    try:
        config = load_config(args.config, args.overrides)
        result = train(config, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as error:
        kind = "invalid checkpoint" if isinstance(error, CheckpointError) else "error"
        print(f"{kind}: {error}", file=sys.stderr)
        return 1
    if result.status == "interrupted":
        signum = signal.SIGTERM if result.stop_signal == "SIGTERM" else signal.SIGINT
        return 128 + int(signum)
    print(
        f"finished {result.epochs_completed} epochs; best held-out accuracy "
        f"{result.best_heldout_acc:.4f} at epoch {result.best_epoch}; outputs in {result.run_dir}"
    )
    return 0


def evaluate_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m ei_tutorial.evaluate``."""
    parser = argparse.ArgumentParser(
        prog="python -m ei_tutorial.evaluate",
        description="Report held-out accuracy and per-layer firing rates of a training checkpoint.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="last.pt or best.pt of a run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--batch-size", type=int, default=512, help="images per batch (default: 512)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N held-out images only")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    return parser


def evaluate_main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m ei_tutorial.evaluate``; return the exit status."""
    args = evaluate_parser().parse_args(argv)
    _configure_logging(args.log_level)
    from ei_tutorial.training.evaluation import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(args.checkpoint, device=args.device, batch_size=args.batch_size, limit=args.limit)
    except (ValueError, FileNotFoundError) as error:
        kind = "invalid checkpoint" if isinstance(error, CheckpointError) else "error"
        print(f"{kind}: {error}", file=sys.stderr)
        return 1
    if args.json:
        fields = ("checkpoint", "epoch", "loss", "acc", "count", "firing_rate", "current_mean", "current_std")
        print(json.dumps({key: result[key] for key in fields}))
        return 0
    config = result["config"]
    print(f"checkpoint: {result['checkpoint']} ({config['arch']}/{config['variant']} on {config['dataset']}, "
          f"epoch {result['epoch']})")
    print(f"held-out accuracy: {result['acc']:.4f} ({result['count']} images), loss {result['loss']:.4f}")
    print("firing rate per spiking layer (spikes per neuron per time step):")
    width = max((len(name) for name in result["firing_rate"]), default=5)
    for name, rate in result["firing_rate"].items():
        print(f"  {name:<{width}}  {rate:.4f}")
    return 0
