"""Throughput and peak memory of an E-I VGG-8 training on MNIST on one CUDA GPU.

Trains the standard E-I VGG-8 (channels 64, 128, 256, 512, 512; T = 4; batch 128) for a
few hundred SGD steps with mixed precision (bfloat16 autocast where the GPU supports it,
else float16 with loss scaling), then prints images per second over the timed steps
and the peak GPU memory allocated by PyTorch. The training images are copied to the GPU
once, so the data loader does not limit the measurement.

Run from the repository root, on a CUDA machine::

    EI_TUTORIAL_DATA=/path/to/data python benchmarks/gpu_vgg8_mnist.py
    python benchmarks/gpu_vgg8_mnist.py --steps 500 --compile --output result.json

``--dry-run`` checks the script on the CPU in seconds: a tiny VGG-8, a few steps, no
mixed precision. Its throughput is no measure of GPU speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ei_tutorial.dale import attach_dale_projection  # noqa: E402
from ei_tutorial.ei_init import ei_init_  # noqa: E402
from ei_tutorial.data import direct_encode, load_datasets  # noqa: E402
from ei_tutorial.models import build_model  # noqa: E402
from ei_tutorial.training.optim import build_optimizer  # noqa: E402
from ei_tutorial.training.precision import Precision, choose_precision  # noqa: E402

NO_CUDA_MESSAGE = (
    "error: no CUDA device is available (torch.cuda.is_available() is False). This benchmark "
    "measures GPU throughput; run it on a machine with an NVIDIA GPU and a CUDA build of "
    "PyTorch, or pass --dry-run to check the script on the CPU."
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed optimizer steps (default: 300)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps before timing (default: 20)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--time-steps", type=int, default=4, help="T, time steps per image (default: 4)")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default: 0.05)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                        help="auto: bfloat16 if supported, else float16 (default: auto)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--output", type=Path, help="also write the result as JSON to this file")
    parser.add_argument("--dry-run", action="store_true", help="tiny model, 3 steps, on the CPU")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "time_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup_steps < 0:
        parser.error(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    return args


def pick_precision(device: torch.device, choice: str) -> Precision:
    if device.type != "cuda" or choice == "fp32":
        return Precision(device.type, None)
    if choice == "auto":
        return choose_precision(device, amp=True)
    return Precision("cuda", torch.bfloat16 if choice == "bf16" else torch.float16)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        args.steps, args.warmup_steps, args.batch_size = 3, 1, 16
        widths = [8, 8, 8, 8, 8]
    else:
        if not torch.cuda.is_available():
            print(NO_CUDA_MESSAGE, file=sys.stderr)
            return 2
        device = torch.device("cuda")
        widths = None
    torch.manual_seed(args.seed)

    train_set, _ = load_datasets("mnist")
    count = min(len(train_set), 4096 if args.dry_run else len(train_set))
    images = torch.stack([train_set[i][0] for i in range(count)]).to(device)
    labels = torch.tensor([int(train_set[i][1]) for i in range(count)], device=device)

    model = build_model("vgg8", "ei", widths=widths).to(device)
    ei_init_(model, direct_encode(images[:256], args.time_steps))
    optimizer = build_optimizer(model, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    attach_dale_projection(optimizer, model)
    precision = pick_precision(device, args.precision)
    scaler = precision.grad_scaler()
    step_model = torch.compile(model) if args.compile else model

    generator = torch.Generator(device=device).manual_seed(args.seed)

    def step() -> tuple[float, float]:
        index = torch.randint(0, count, (args.batch_size,), device=device, generator=generator)
        with precision.autocast():
            logits = step_model(direct_encode(images[index], args.time_steps)).float()
        loss = F.cross_entropy(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach(), (logits.argmax(1) == labels[index]).float().mean()

    for _ in range(args.warmup_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    losses, accuracies = [], []
    for _ in range(args.steps):
        loss, accuracy = step()
        losses.append(loss)
        accuracies.append(accuracy)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    tail = max(1, args.steps // 10)
    result = {
        "benchmark": "E-I VGG-8 training on MNIST",
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "precision": precision.describe(),
        "compile": args.compile,
        "batch_size": args.batch_size,
        "time_steps": args.time_steps,
        "timed_steps": args.steps,
        "seconds": round(seconds, 3),
        "images_per_second": round(args.steps * args.batch_size / seconds, 1),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        "final_loss": round(float(torch.stack(losses[-tail:]).mean()), 4),
        "final_train_acc": round(float(torch.stack(accuracies[-tail:]).mean()), 4),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    print(json.dumps(result, indent=2))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
