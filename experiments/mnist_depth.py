"""Depth experiments on MNIST: does an E-I network train where a plain one cannot?

Three parts, each a series of CPU training runs through :func:`ei_tutorial.training.train`:

- ``mlp``: the shipped ``mnist_mlp`` config (E-I, 784-500-300-10). Check: held-out
  accuracy of at least 95%.
- ``depth8``: the shipped ``mnist_mlp_depth8`` config (hidden widths 500, 500, 300,
  300, 300, 100, 100) in its E-I, batch-norm and plain variants, same epochs. Checks: E-I
  within 2 points of batch norm, plain at chance (below 15%).
- ``depth16``: a 16-layer MLP (hidden widths 500 x 3, 300 x 6, 100 x 6), E-I against
  batch norm. Further E-I runs each change one setting (warm-up length, learning rate,
  width, E:I ratio) to find what closes the gap.

Data: MNIST through :func:`ei_tutorial.data.load_datasets`. With only the MNIST test
split on disk (``EI_TUTORIAL_DATA``), that is 8,000 training and 2,000 held-out images.

Usage, from the repository root::

    EI_TUTORIAL_DATA=/path/to/data python experiments/mnist_depth.py --results experiments/RESULTS.md
    python experiments/mnist_depth.py --parts depth8 --out runs/experiments
    python experiments/mnist_depth.py --quick   # a smoke run in under a minute, numbers meaningless
    python experiments/mnist_depth.py --reuse   # read runs already finished with the same config and code

Each run prints one line as it finishes; at the end the script prints the tables and the
checks, and with ``--results`` writes them, with the machine and date, to a Markdown file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ei_tutorial.training import load_checkpoint, load_config, read_metrics, train  # noqa: E402
from ei_tutorial.training.checkpoint import LAST  # noqa: E402
from ei_tutorial.training.config import RUNTIME_KEYS  # noqa: E402
from ei_tutorial.training.metrics import METRICS_FILE  # noqa: E402

DEPTH16_WIDTHS = [500] * 3 + [300] * 6 + [100] * 6
DEPTH16_WIDE = [500] * 15
CHANCE_CEILING = 0.15


@dataclass
class Run:
    """One training run: a shipped config, overrides, and what the table calls it."""

    part: str
    label: str
    config: str
    overrides: list[str] = field(default_factory=list)


def planned_runs(parts: list[str]) -> list[Run]:
    """Return the runs of the requested parts, in the order they are trained."""
    runs = []
    if "mlp" in parts:
        runs.append(Run("mlp", "E-I, 784-500-300-10", "mnist_mlp", ["variant=ei"]))
    if "depth8" in parts:
        for variant in ("ei", "bn", "plain"):
            runs.append(Run("depth8", variant, "mnist_mlp_depth8", [f"variant={variant}"]))
    if "depth16" in parts:
        depth16 = ["variant=ei", f"widths={json.dumps(DEPTH16_WIDTHS)}"]
        runs += [
            Run("depth16", "E-I, depth-8 settings", "mnist_mlp_depth8", depth16),
            Run("depth16", "batch norm, depth-8 settings", "mnist_mlp_depth8",
                ["variant=bn", f"widths={json.dumps(DEPTH16_WIDTHS)}"]),
            Run("depth16", "E-I, warm-up 3 epochs", "mnist_mlp_depth8", [*depth16, "warmup_epochs=3"]),
            Run("depth16", "E-I, lr 0.005", "mnist_mlp_depth8", [*depth16, "lr=0.005"]),
            Run("depth16", "E-I, lr 0.05", "mnist_mlp_depth8", [*depth16, "lr=0.05"]),
            Run("depth16", "E-I, all widths 500", "mnist_mlp_depth8", ["variant=ei", f"widths={json.dumps(DEPTH16_WIDE)}"]),
            Run("depth16", "E-I, E:I ratio 2", "mnist_mlp_depth8", [*depth16, "layer_kwargs.ei_ratio=2"]),
            Run("depth16", "E-I, lr 0.002", "mnist_mlp_depth8", [*depth16, "lr=0.002"]),
            Run("depth16", "E-I, lr 0.01", "mnist_mlp_depth8", [*depth16, "lr=0.01"]),
            Run("depth16", "E-I, lr 0.005, warm-up 3 epochs", "mnist_mlp_depth8",
                [*depth16, "lr=0.005", "warmup_epochs=3"]),
            Run("depth16", "E-I, gradient norm clipped at 1", "mnist_mlp_depth8", [*depth16, "grad_clip_norm=1.0"]),
            Run("depth16", "E-I, lr 0.01, warm-up 3 epochs, clipped at 1", "mnist_mlp_depth8",
                [*depth16, "lr=0.01", "warmup_epochs=3", "grad_clip_norm=1.0"]),
            Run("depth16", "E-I, lr 0.005, warm-up 3 epochs, clipped at 1", "mnist_mlp_depth8",
                [*depth16, "lr=0.005", "warmup_epochs=3", "grad_clip_norm=1.0"]),
            Run("depth16", "E-I, lr 0.005, warm-up 3 epochs, 20 epochs", "mnist_mlp_depth8",
                [*depth16, "lr=0.005", "warmup_epochs=3", "epochs=20"]),
            Run("depth16", "E-I, lr 0.01, E:I ratio 2", "mnist_mlp_depth8",
                [*depth16, "lr=0.01", "layer_kwargs.ei_ratio=2"]),
        ]
        # Seeds 1 and 2 of the baseline, the best single change and batch norm, to tell
        # effects from run-to-run spread.
        for seed in (1, 2):
            runs += [
                Run("depth16", f"E-I, depth-8 settings, seed {seed}", "mnist_mlp_depth8", [*depth16, f"seed={seed}"]),
                Run("depth16", f"E-I, lr 0.01, seed {seed}", "mnist_mlp_depth8", [*depth16, "lr=0.01", f"seed={seed}"]),
                Run("depth16", f"E-I, E:I ratio 2, seed {seed}", "mnist_mlp_depth8",
                    [*depth16, "layer_kwargs.ei_ratio=2", f"seed={seed}"]),
                Run("depth16", f"batch norm, depth-8 settings, seed {seed}", "mnist_mlp_depth8",
                    ["variant=bn", f"widths={json.dumps(DEPTH16_WIDTHS)}", f"seed={seed}"]),
            ]
    return runs


QUICK_OVERRIDES = ["epochs=1", "train_subset=512", "heldout_subset=256", "warmup_epochs=0.5"]
QUICK_DEPTH16_RUNS = 2
LIBRARY = Path(__file__).resolve().parents[1] / "ei_tutorial"
FINGERPRINT_FILE = "code_fingerprint.txt"


def code_fingerprint() -> str:
    """Return a SHA-256 of the library's Python sources, which identifies the code that trained a run."""
    digest = hashlib.sha256()
    for path in sorted(LIBRARY.rglob("*.py")):
        digest.update(str(path.relative_to(LIBRARY)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def git_commit() -> str:
    """Return the repository's HEAD commit, with ``+changes`` when the library has uncommitted edits."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=LIBRARY.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "ei_tutorial"], cwd=LIBRARY.parent, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" +changes" if dirty else "")


def finished_history(config) -> list[dict] | None:
    """Return the metrics of a finished earlier run of exactly this config and code, or None.

    A run counts as finished when its ``last.pt`` has all ``config.epochs`` epochs, its
    stored config matches ``config`` in every key but the runtime ones, and it was
    trained by library sources with the same :func:`code_fingerprint`.
    """
    last = config.run_dir() / LAST
    fingerprint = config.run_dir() / FINGERPRINT_FILE
    if not last.is_file() or not fingerprint.is_file():
        return None
    if fingerprint.read_text().strip() != code_fingerprint():
        return None
    checkpoint = load_checkpoint(last)
    current = config.to_dict()
    same = all(checkpoint["config"].get(key) == value for key, value in current.items() if key not in RUNTIME_KEYS)
    if not same or checkpoint["epoch"] != config.epochs:
        return None
    return read_metrics(config.run_dir() / METRICS_FILE)


def execute(run: Run, out_dir: Path, quick: bool, reuse: bool) -> dict:
    """Train one run (or, with ``reuse``, read a finished identical one) and return its summary row."""
    name = f"{run.part}_{run.label}".replace(" ", "_").replace(",", "").replace(":", "").replace("(", "").replace(")", "")
    overrides = [*run.overrides, f"out_dir={out_dir}", f"name={name}", "progress=false"]
    if quick:
        overrides += QUICK_OVERRIDES
    config = load_config(run.config, overrides)
    history = finished_history(config) if reuse else None
    if history is None:
        history = train(config, overwrite=True).history
        (config.run_dir() / FINGERPRINT_FILE).write_text(code_fingerprint() + "\n")
    accuracies = [record["heldout_acc"] for record in history]
    return {
        "part": run.part,
        "label": run.label,
        "variant": config.variant,
        "widths": config.widths,
        "lr": config.resolved_lr(),
        "warmup_epochs": config.resolved_warmup_epochs(),
        "epochs": len(history),
        "final_acc": accuracies[-1],
        "best_acc": max(accuracies),
        "accs": accuracies,
        "first_rate": next(iter(history[-1]["firing_rate"].values())),
        "last_rate": list(history[-1]["firing_rate"].values())[-1],
        "minutes": sum(record["seconds"] for record in history) / 60,
    }


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def table(rows: list[dict]) -> str:
    """Return a Markdown table of summary rows."""
    lines = [
        "| run | variant | lr | warm-up (epochs) | epochs | held-out acc. (final) | best | per-epoch acc. (%) "
        "| rate, first / last hidden layer | training minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_epoch = " ".join(f"{100 * acc:.1f}" for acc in row["accs"])
        lines.append(
            f"| {row['label']} | {row['variant']} | {row['lr']:g} | {row['warmup_epochs']:g} | {row['epochs']} "
            f"| {_pct(row['final_acc'])} | {_pct(row['best_acc'])} | {per_epoch} "
            f"| {row['first_rate']:.3f} / {row['last_rate']:.3f} | {row['minutes']:.1f} |"
        )
    return "\n".join(lines)


def checks(rows: list[dict]) -> list[str]:
    """Return one line per claim that the finished parts can decide: PASS or FAIL with the numbers."""
    lines = []
    by_key = {(row["part"], row["label"]): row for row in rows}
    mlp = [row for row in rows if row["part"] == "mlp"]
    if mlp:
        acc = mlp[0]["final_acc"]
        lines.append(f"- {'PASS' if acc >= 0.95 else 'FAIL'}: E-I MLP reaches >= 95% held-out accuracy ({_pct(acc)}).")
    ei, bn, plain = (by_key.get(("depth8", variant)) for variant in ("ei", "bn", "plain"))
    if ei and bn:
        gap = bn["final_acc"] - ei["final_acc"]
        verdict = "PASS" if gap <= 0.02 else "FAIL"
        lines.append(
            f"- {verdict}: depth 8, E-I within 2 points of batch norm after {ei['epochs']} epochs "
            f"(E-I {_pct(ei['final_acc'])}, batch norm {_pct(bn['final_acc'])}, gap {100 * gap:.2f} points)."
        )
    if plain:
        verdict = "PASS" if plain["final_acc"] < CHANCE_CEILING else "FAIL"
        lines.append(
            f"- {verdict}: depth 8, plain variant at chance (< {_pct(CHANCE_CEILING)}): {_pct(plain['final_acc'])}."
        )
    return lines


def machine_description() -> str:
    threads = torch.get_num_threads()
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
        f"(torch uses {threads} thread{'s' if threads != 1 else ''}), Python {platform.python_version()}, "
        f"torch {torch.__version__}, no GPU used"
    )


def report(rows: list[dict], quick: bool) -> str:
    """Return the Markdown report of all finished runs."""
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    parts = []
    titles = {"mlp": "E-I MLP (mnist_mlp)", "depth8": "Depth 8 (mnist_mlp_depth8)", "depth16": "Depth 16"}
    for part, title in titles.items():
        part_rows = [row for row in rows if row["part"] == part]
        if part_rows:
            parts.append(f"### {title}\n\n{table(part_rows)}")
    header = (
        "Generated by `python experiments/mnist_depth.py`"
        + (" --quick (smoke run: the numbers mean nothing)" if quick else "")
        + f" on {date}, library code at commit {git_commit()}.\n\nMachine: {machine_description()}.\n\n"
        "Data: MNIST via `ei_tutorial.data.load_datasets`; with only the test split on disk, "
        "8,000 images train and 2,000 are held out (fixed split). Accuracies are on the held-out part.\n\n"
        "Training minutes are the wall-clock time of each run on a machine that other jobs shared, so "
        "they vary by a factor of two or more between runs of the same size; runs read back with "
        "`--reuse` keep the minutes of their first training."
    )
    return "\n\n".join([header, *parts, "### Checks\n\n" + "\n".join(checks(rows) or ["- none decided"])]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Depth experiments on MNIST (see the module docstring).")
    parser.add_argument("--parts", default="mlp,depth8,depth16", help="comma-separated: mlp, depth8, depth16")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"), help="folder for the run folders")
    parser.add_argument("--results", type=Path, help="write the Markdown report to this file")
    parser.add_argument(
        "--quick", action="store_true",
        help=f"1 epoch on 512 images per run, {QUICK_DEPTH16_RUNS} depth-16 runs: a smoke test",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument(
        "--reuse", action="store_true",
        help="read runs already finished in --out with the same config instead of training them again",
    )
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - {"mlp", "depth8", "depth16"})
    if unknown:
        parser.error(f"unknown part(s) {unknown}; expected mlp, depth8 and/or depth16")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    runs = planned_runs(parts)
    if args.quick:
        depth16 = [run for run in runs if run.part == "depth16"]
        runs = [run for run in runs if run.part != "depth16"] + depth16[:QUICK_DEPTH16_RUNS]
    rows = []
    for run in runs:
        row = execute(run, args.out, args.quick, args.reuse)
        rows.append(row)
        print(
            f"[{row['part']}] {row['label']}: final {_pct(row['final_acc'])}, best {_pct(row['best_acc'])}, "
            f"per epoch {[round(100 * a, 2) for a in row['accs']]}, {row['minutes']:.1f} min",
            flush=True,
        )
    text = report(rows, args.quick)
    print("\n" + text)
    if args.results is not None:
        args.results.write_text(text, encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
