"""Time per training step and peak memory of E-I, batch-norm and plain spiking networks.

For each architecture and batch size the script builds every variant with
:func:`ei_tutorial.models.build_model` (``"ei"``, ``"bn"``, ``"plain"``). It adds the same
batch-norm network written the way snnTorch users write it, ``"snntorch-bn"``, which calls
each layer once per time step and uses ``snntorch.Leaky`` neurons (``snntorch_baseline.py``).
A training step is the forward pass, the cross-entropy loss, the backward pass and an
SGD step with momentum; for ``"ei"`` it includes the Dale projection that clamps the
E-I parameters after the step. The E-I networks are initialised with ``ei_init_`` first,
which is not timed.

Timing: the variants run interleaved in one process (one step of each in turn, the order
rotated every round) after warm-up steps. The table reports each variant's median step
time over the rounds and its ratio to the ``"bn"`` variant: the median over rounds of the
ratio of the two steps of one round, which were measured seconds apart, so a change of
load between rounds on a shared machine cancels. On the CPU the same ratio is also given
for the process CPU time of a step (``time.process_time``, all threads), which counts
less of the time spent waiting for a core. On CUDA each step is timed with CUDA events.

Peak memory: the largest amount of tensor memory allocated during one training step (after
the timing rounds) beyond what was allocated before it (model, optimizer state and batch):
gradients, activations kept for the backward pass and temporaries. On CUDA it comes from
``torch.cuda.max_memory_allocated``; on the CPU from the allocation events that
``torch.profiler`` records with ``profile_memory=True``, which carry the running total of
bytes allocated through PyTorch's CPU allocator. Memory that a library allocates itself
(oneDNN scratch space, for example) and memory the C allocator keeps after a free are
not counted.

Outputs: a Markdown table on standard output and in ``book/_generated/benchmark_table.md``,
and JSON in ``benchmarks/results/<machine>.json`` and ``benchmarks/results/latest.json``
(each written to a temporary file and renamed).

Run from the repository root::

    python benchmarks/step_time.py                       # default set: 3 to 5 min on a 2-core CPU
    python benchmarks/step_time.py --image-size 32 --channels 3   # CIFAR-10-sized input
    python benchmarks/step_time.py --archs vgg8 --batch-sizes 64 128 --rounds 10
    python benchmarks/step_time.py --device cuda --batch-sizes 32 128
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

# The memory measurement starts torch.profiler once per variant. Its Kineto back end logs
# every start and stop on stderr unless its log level is raised before torch loads.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ei_tutorial import attach_dale_projection, ei_init_, input_checks  # noqa: E402
from ei_tutorial.data import direct_encode  # noqa: E402
from ei_tutorial.models import build_model  # noqa: E402
from snntorch_baseline import build_snntorch_model  # noqa: E402

VARIANTS = ("ei", "bn", "plain", "snntorch-bn", "ei-unchecked")
DEFAULT_VARIANTS = ("ei", "bn", "plain", "snntorch-bn")
ARCHS = ("mlp", "vgg8", "vgg11")
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TABLE_PATH = REPO_ROOT / "book" / "_generated" / "benchmark_table.md"
MIB = 1024 * 1024


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS),
                        help="architectures to measure (default: all)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(DEFAULT_VARIANTS),
                        help="variants to measure; 'bn' is always added because ratios refer to it; "
                             "'ei-unchecked' is 'ei' without the input checks (default: %(default)s)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32],
                        help="samples per step, B (default: 16 32)")

    parser.add_argument("--time-steps", type=int, default=4, help="time steps per sample, T (default: 4)")
    parser.add_argument("--image-size", type=int, default=28,
                        help="input height and width in pixels (default: 28, as MNIST; 32 for CIFAR-10)")
    parser.add_argument("--channels", type=int, default=1,
                        help="input channels (default: 1, as MNIST; 3 for CIFAR-10)")

    parser.add_argument("--rounds", type=int, default=21,
                        help="timed rounds; each round runs one step of every variant (default: 21)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first (default: 2)")
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last",
                        help="memory format of the convolution networks' inputs and kernels for every "
                             "variant (default: channels_last, the format the fused E-I path uses)")

    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available (default: auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")

    parser.add_argument("--skip-memory", action="store_true", help="do not measure peak memory")
    parser.add_argument("--machine", default=None,
                        help="name of the results file benchmarks/results/<machine>.json "
                             "(default: host name and device)")
    parser.add_argument("--no-write", action="store_true", help="print the table only; write no files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch (default: 0)")
    args = parser.parse_args(argv)

    for name in ("time_steps", "image_size", "channels", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if any(batch < 2 for batch in args.batch_sizes):
        parser.error(f"every batch size must be >= 2 (batch norm needs two samples), got {args.batch_sizes}")
    if "bn" not in args.variants:
        args.variants = ["bn", *args.variants]
    return args


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was requested, but torch.cuda.is_available() is False")
    return torch.device(name)


# --- one training setup ----------------------------------------------------------------


class Setup:
    """A model, its optimizer and one fixed batch: everything a timed step needs."""

    def __init__(self, arch: str, variant: str, batch: int, args: argparse.Namespace, device: torch.device):
        torch.manual_seed(args.seed)
        self.variant = variant
        self.channels_last = arch != "mlp" and args.memory_format == "channels_last"
        self.inputs = make_inputs(batch, args, device, self.channels_last)
        self.targets = torch.randint(0, 10, (batch,), device=device)
        if variant == "snntorch-bn":
            model = build_snntorch_model(arch, args.channels, args.image_size)
        else:
            model = build_model(arch, "ei" if variant.startswith("ei") else variant,
                                in_channels=args.channels, image_size=args.image_size)
        model = model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if variant.startswith("ei"):
            ei_init_(model, self.inputs, seed=args.seed)
            attach_dale_projection(self.optimizer, model)
        self.model = model

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.variant == "ei-unchecked":
            with input_checks(False):
                loss = F.cross_entropy(self.model(self.inputs), self.targets)
        else:
            loss = F.cross_entropy(self.model(self.inputs), self.targets)
        loss.backward()
        self.optimizer.step()


def make_inputs(batch: int, args: argparse.Namespace, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Return a fixed input ``[T, B, C, H, W]`` with pixel values in [0, 1).

    The images are repeated over time by :func:`ei_tutorial.data.direct_encode`, the
    view that the trainer feeds its models, so layers that compute a repeated input once
    (:mod:`ei_tutorial.repeats`) do so here too.
    """
    images = torch.rand(batch, args.channels, args.image_size, args.image_size, device=device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return direct_encode(images.contiguous(memory_format=memory_format), args.time_steps)


# --- timing ----------------------------------------------------------------------------


def timer(device: torch.device) -> Callable[[Callable[[], None]], tuple[float, Optional[float]]]:
    """Return ``time_it(fn) -> (seconds, cpu_seconds)`` for ``device``.

    On CUDA the seconds come from CUDA events and ``cpu_seconds`` is None.
    """
    if device.type == "cuda":
        def time_it(fn: Callable[[], None]) -> tuple[float, Optional[float]]:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0, None
        return time_it

    def time_it(fn: Callable[[], None]) -> tuple[float, Optional[float]]:
        begin, begin_cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - begin, time.process_time() - begin_cpu
    return time_it


def measure_variants(arch: str, batch: int, args: argparse.Namespace, device: torch.device) -> dict[str, dict]:
    """Return ``{variant: {"times_s", "cpu_times_s", "peak_bytes"}}``, the times measured interleaved.

    ``cpu_times_s`` is None on CUDA; ``peak_bytes`` is None with ``--skip-memory``.
    """
    setups = {variant: Setup(arch, variant, batch, args, device) for variant in args.variants}
    for setup in setups.values():
        for _ in range(args.warmup):
            setup.step()
    time_it = timer(device)
    times = {variant: {"times_s": [], "cpu_times_s": []} for variant in setups}
    order = list(setups)
    for round_index in range(args.rounds):
        shift = round_index % len(order)
        for variant in order[shift:] + order[:shift]:
            gc.collect()
            seconds, cpu_seconds = time_it(setups[variant].step)
            times[variant]["times_s"].append(seconds)
            times[variant]["cpu_times_s"].append(cpu_seconds)
    for variant, record in times.items():
        if None in record["cpu_times_s"]:
            record["cpu_times_s"] = None
        record["peak_bytes"] = None if args.skip_memory else measure_peak_memory(setups[variant], device)
    return times


# --- peak memory -----------------------------------------------------------------------


def _cpu_allocation_totals(prof: torch.profiler.profile) -> list[tuple[int, int, int]]:
    """Return ``(time_ns, size, running_total)`` of every CPU allocation event, in time order.

    Uses the profiler's event tree (``experimental_event_tree``, PyTorch >= 2.0), where an
    allocation event's ``total_allocated`` is the allocator's running total after it.
    """
    from torch._C._profiler import _EventType

    events = []
    pending = list(prof.profiler.kineto_results.experimental_event_tree())
    while pending:
        node = pending.pop()
        pending.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            fields = node.extra_fields
            events.append((node.start_time_ns, fields.alloc_size, fields.total_allocated))
    return sorted(events)


def measure_peak_memory(setup: Setup, device: torch.device) -> Optional[float]:
    """Return the peak tensor memory in bytes of one step beyond what was allocated before it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        setup.step()
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        setup.step()
    events = _cpu_allocation_totals(prof)
    if not events:
        return None
    _, first_size, first_total = events[0]
    return float(max(total for _, _, total in events) - (first_total - first_size))


# --- report ----------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> dict:
    import snntorch

    info = {
        "host": platform.node(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "snntorch": snntorch.__version__,
        "malloc_env": {key: value for key, value in os.environ.items() if key.startswith("MALLOC_")},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_label(info: dict) -> str:
    if info["device"] == "cuda":
        return f"{info['gpu']} (CUDA), PyTorch {info['torch']}"
    return f"{info['cpu']}, {info['cpu_count']} cores, {info['torch_threads']} torch threads, PyTorch {info['torch']}"


def paired_ratio(times: Optional[list[float]], reference: Optional[list[float]]) -> Optional[float]:
    """Return the median over rounds of ``times[r] / reference[r]``, or None without data."""
    if not times or not reference:
        return None
    return statistics.median(value / other for value, other in zip(times, reference))


def summarise(rows: list[dict]) -> None:
    """Add medians and the ratios to the ``bn`` and ``snntorch-bn`` rows of the same configuration, in place."""
    for row in rows:
        row["median_s"] = statistics.median(row["times_s"])
        row["median_cpu_s"] = statistics.median(row["cpu_times_s"]) if row["cpu_times_s"] else None
    by_config = {}
    for row in rows:
        by_config.setdefault((row["arch"], row["batch"]), {})[row["variant"]] = row
    for group in by_config.values():
        for row in group.values():
            for reference in ("bn", "snntorch-bn"):
                key = reference.replace("-", "_")
                other = group.get(reference)
                row[f"time_vs_{key}"] = paired_ratio(row["times_s"], other and other["times_s"])
                row[f"cpu_time_vs_{key}"] = paired_ratio(row["cpu_times_s"], other and other["cpu_times_s"])
                both = other and row.get("peak_bytes") is not None and other.get("peak_bytes")
                row[f"memory_vs_{key}"] = row["peak_bytes"] / other["peak_bytes"] if both else None


def _ratio(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.2f}"


# (row key, label, target) of the E-I ratios that ei_summary reports.
SUMMARY_RATIOS = (
    ("time_vs_bn", "step time / BN", 1.3),
    ("time_vs_snntorch_bn", "step time / snnTorch BN", 1.3),
    ("memory_vs_bn", "peak memory / BN", 1.5),
)


def ei_summary(rows: list[dict]) -> Optional[str]:
    """Return one sentence with the range of each E-I ratio over the VGG rows, or None without such rows."""
    ei_rows = [row for row in rows if row["variant"] == "ei" and row["arch"].startswith("vgg")]
    parts = []
    for key, label, target in SUMMARY_RATIOS:
        values = [row[key] for row in ei_rows if row.get(key) is not None]
        if values:
            parts.append(f"{label} {min(values):.2f} to {max(values):.2f} (target at most {target})")
    return "E-I VGG rows: " + "; ".join(parts) + "." if parts else None


def markdown_table(result: dict) -> str:
    config = result["config"]
    lines = [
        f"Measured on {machine_label(result['machine'])}, {result['date']}; "
        f"T = {config['time_steps']}, input {config['channels']}x{config['image_size']}x{config['image_size']}, "
        f"memory format {config['memory_format']}, median of {config['rounds']} interleaved rounds "
        f"after {config['warmup']} warm-up step(s).",
        "",
        "| Model | B | Variant | Step (ms) | Range (ms) | Time / BN | Time / snnTorch BN | CPU time / BN "
        "| Peak memory (MiB) | Memory / BN |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        spread = f"{min(row['times_s']) * 1e3:.0f}-{max(row['times_s']) * 1e3:.0f}"
        memory = "" if row.get("peak_bytes") is None else f"{row['peak_bytes'] / MIB:.0f}"
        lines.append(
            f"| {row['arch']} | {row['batch']} | {row['variant']} | {row['median_s'] * 1e3:.0f} | {spread} | "
            f"{_ratio(row['time_vs_bn'])} | {_ratio(row['time_vs_snntorch_bn'])} | "
            f"{_ratio(row['cpu_time_vs_bn'])} | {memory} | {_ratio(row['memory_vs_bn'])} |"
        )
    lines += [
        "",
        "Ratios are medians over rounds of the ratio between two steps of the same round. "
        f"Peak memory: {result['memory_method'] or 'not measured'}.",
    ]
    summary = ei_summary(result["rows"])
    if summary is not None:
        lines += ["", summary]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "machine"


# --- main ------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)

    started = time.perf_counter()
    info = describe_machine(device)
    rows = []
    for arch in args.archs:
        for batch in args.batch_sizes:
            measured = measure_variants(arch, batch, args, device)
            rows.extend({"arch": arch, "batch": batch, "variant": variant, **measured[variant]}
                        for variant in args.variants)
            print(f"measured {arch} B={batch} after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    summarise(rows)
    config = {key: getattr(args, key) for key in
              ("archs", "variants", "batch_sizes", "time_steps", "image_size", "channels", "rounds", "warmup",
               "memory_format", "seed")}
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "benchmarks/step_time.py", *argv]),
        "machine": info,
        "config": config,
        "memory_method": None if args.skip_memory else (
            "torch.cuda.max_memory_allocated during one step minus the memory allocated before it"
            if device.type == "cuda" else
            "peak of PyTorch's CPU allocator total during one step minus the total before it "
            "(torch.profiler with profile_memory=True)"),
        "runtime_s": None,
        "rows": rows,
    }
    result["runtime_s"] = round(time.perf_counter() - started, 1)
    table = markdown_table(result)
    print(table)
    if not args.no_write:
        text = json.dumps(result, indent=2) + "\n"
        machine = args.machine or slug(f"{info['host']}-{device.type}")
        write_atomically(RESULTS_DIR / f"{machine}.json", text)
        write_atomically(RESULTS_DIR / "latest.json", text)
        write_atomically(TABLE_PATH, table)
    print(f"total runtime {result['runtime_s']:.0f} s", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
