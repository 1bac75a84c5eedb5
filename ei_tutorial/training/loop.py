"""The training loop: :func:`train` runs a config from start (or from its last checkpoint) to end.

One optimizer step: images ``[B, C, H, W]`` -> repeated over ``T`` steps -> model ->
logits (time-averaged readout) -> cross-entropy -> backward -> SGD step -> Dale
projection (E-I layers) -> learning-rate schedule step. After each epoch the model is
evaluated on the held-out data, a line is appended to ``metrics.jsonl`` and
``last.pt`` (and ``best.pt`` when the held-out accuracy improves) is written
atomically. Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ei_tutorial.dale import attach_dale_projection, constrained_parameters
from ei_tutorial.data import direct_encode
from ei_tutorial.models import build_model, get_variant, record_activity
from ei_tutorial.training.checkpoint import (
    BEST,
    CHECKPOINT_FORMAT,
    LAST,
    CheckpointError,
    check_model_spec,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from ei_tutorial.training.config import RUNTIME_KEYS, TrainConfig, config_from_dict
from ei_tutorial.training.distributed import (
    DistributedContext,
    all_reduce_sum,
    setup_distributed,
    teardown_distributed,
)
from ei_tutorial.training.evaluation import evaluate
from ei_tutorial.training.interrupts import StopRequest, stop_requests
from ei_tutorial.training.loaders import RunData, build_run_data, init_batch
from ei_tutorial.training.metrics import METRICS_FILE, append_metrics, read_metrics, truncate_metrics
from ei_tutorial.training.optim import build_optimizer, build_scheduler
from ei_tutorial.training.precision import choose_precision
from ei_tutorial.training.rng import capture_rng_state, restore_rng_state, seed_everything

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss becomes NaN or infinite; names the epoch and step."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        config: The config that ran.
        run_dir: Folder with ``last.pt``, ``best.pt`` and ``metrics.jsonl``.
        status: ``"completed"``, or ``"interrupted"`` after SIGINT or SIGTERM.
        epochs_completed: Epochs finished, counting those of earlier runs before a resume.
        best_heldout_acc: Best held-out accuracy (fraction), NaN before the first epoch.
        best_epoch: Epoch (1-based) of the best accuracy, 0 before the first epoch.
        history: The ``metrics.jsonl`` records of all completed epochs.
        model: The trained model (unwrapped, on the training device).
        stop_signal: Name of the signal that interrupted the run (``"SIGINT"`` or
            ``"SIGTERM"``), empty otherwise.
    """

    config: TrainConfig
    run_dir: Path
    status: str
    epochs_completed: int
    best_heldout_acc: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    model: Optional[nn.Module] = None
    stop_signal: str = ""


def train(config: Union[TrainConfig, Mapping[str, Any]], *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a model as ``config`` describes and return the result.

    Under ``torchrun`` every process calls this function; it joins the process group
    (gloo on the CPU, NCCL on CUDA), trains with DistributedDataParallel and leaves the
    group at the end. Ctrl-C or SIGTERM stops the run before the next step and returns
    with ``status="interrupted"``; the last complete checkpoint stays intact.

    Args:
        config: A :class:`TrainConfig`, or a mapping of config keys.
        resume: Continue from ``run_dir/last.pt``, restoring model, optimizer,
            schedule, random-number generators and epoch, so the run continues exactly
            as if it had not stopped. The config must match the checkpoint's, except
            for runtime keys (progress, num_workers, device, compile, eval_batch_size,
            log_every, out_dir).
        overwrite: Start afresh even if ``run_dir`` holds an earlier run, replacing its
            checkpoints and metrics.

    Returns:
        The :class:`TrainResult`.

    Raises:
        ValueError: On an invalid config, or a run folder that already holds a run
            when neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: If ``resume`` is set but there is no checkpoint.
        CheckpointError: If the checkpoint is corrupt or belongs to another model or
            config.
        NonFiniteLossError: If the loss becomes NaN or infinite; the last complete
            checkpoint is kept.
    """
    if not isinstance(config, TrainConfig):
        config = config_from_dict(config)
    context = setup_distributed(config.device)
    try:
        return _Run(config, context, resume=resume, overwrite=overwrite).run()
    finally:
        teardown_distributed(context)


def _check_run_folder(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    run_dir = config.run_dir()
    last = run_dir / LAST
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other; pass one of them")
    if resume and not last.is_file():
        raise FileNotFoundError(
            f"cannot resume: {last} does not exist; the run stopped before its first checkpoint, "
            "so start it again without --resume"
        )
    if not resume and not overwrite and (last.is_file() or (run_dir / METRICS_FILE).is_file()):
        raise ValueError(
            f"run folder {run_dir} already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or choose another name=..."
        )
    return run_dir


def _check_resumable(stored: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    differences = [
        f"{key}: checkpoint {stored.get(key)!r}, now {value!r}"
        for key, value in current.items()
        if key not in RUNTIME_KEYS and stored.get(key) != value
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} was written with other settings ({'; '.join(differences)}); "
            "resume with the same config, or start a new run under another name"
        )


class _Run:
    """State of one call to :func:`train`; see there."""

    def __init__(self, config: TrainConfig, context: DistributedContext, *, resume: bool, overwrite: bool) -> None:
        self.config = config
        self.context = context
        self.device = context.device
        self.run_dir = _check_run_folder(config, resume, overwrite)
        self.resume = resume
        self.overwrite = overwrite
        self.epoch = 0
        self.global_step = 0
        self.best_acc = float("-inf")
        self.best_epoch = 0
        self.history: list[dict[str, Any]] = []

    # -- set-up ---------------------------------------------------------------------------

    def _build(self) -> None:
        config = self.config
        seed_everything(config.seed)
        self.data: RunData = build_run_data(config, self.context)
        model = build_model(
            config.arch,
            config.variant,
            num_classes=self.data.num_classes,
            in_channels=self.data.in_channels,
            image_size=self.data.image_size,
            widths=config.widths,
            neuron=config.neuron,
            neuron_kwargs=config.neuron_kwargs,
            layer_kwargs=config.layer_kwargs,
        )
        self.model = model.to(self.device)
        initializer = get_variant(config.variant).initializer
        if initializer is not None and not self.resume:
            images = init_batch(self.data.train_set, config.init_batch_size, config.seed).to(self.device)
            initializer(self.model, direct_encode(images, config.time_steps))
            logger.info("initialised the %s layers from %d training images", config.variant, len(images))

        self.optimizer = build_optimizer(
            self.model, config.resolved_lr(), config.momentum, config.resolved_weight_decay()
        )
        if next(constrained_parameters(self.model), None) is not None:
            attach_dale_projection(self.optimizer, self.model)
        steps = self.data.steps_per_epoch
        self.scheduler = build_scheduler(
            self.optimizer,
            total_steps=config.epochs * steps,
            warmup_steps=round(config.resolved_warmup_epochs() * steps),
            warmup_start_factor=config.warmup_start_factor,
            min_lr=config.min_lr,
        )
        self.precision = choose_precision(self.device, config.amp)
        self.scaler = self.precision.grad_scaler()

    def _restore(self) -> None:
        path = self.run_dir / LAST
        checkpoint = load_checkpoint(path, map_location=self.device)
        check_model_spec(checkpoint, self.config.model_spec(), path)
        _check_resumable(checkpoint["config"], self.config, path)
        load_model_state(self.model, checkpoint, path)
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"checkpoint {path} has an unusable optimizer or schedule state: {error}") from error
        self.epoch = int(checkpoint["epoch"])
        self.global_step = int(checkpoint["global_step"])
        self.best_acc = float(checkpoint["best_acc"])
        self.best_epoch = int(checkpoint["best_epoch"])
        if self.context.is_main:
            dropped = truncate_metrics(self.run_dir / METRICS_FILE, self.epoch)
            if dropped:
                logger.info("dropped %d metrics line(s) of epochs after the checkpoint", dropped)
        self.history = [r for r in read_metrics(self.run_dir / METRICS_FILE) if r.get("epoch", 0) <= self.epoch]
        restore_rng_state(checkpoint["rng"], self.data.generator)
        logger.info("resumed %s after epoch %d (step %d)", path, self.epoch, self.global_step)

    def _clear_previous_run(self) -> None:
        if not self.context.is_main:
            return
        for name in (LAST, BEST, METRICS_FILE):
            (self.run_dir / name).unlink(missing_ok=True)

    def _wrap(self) -> nn.Module:
        module: nn.Module = self.model
        if self.context.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(self.model, device_ids=device_ids)
        if self.config.compile:
            # NOTE: only a cuda-marked test runs compile=true; no CPU test compiles.
            module = torch.compile(module)
        return module

    # -- the run -------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self._build()
        if self.resume:
            self._restore()
        elif self.overwrite:
            self._clear_previous_run()
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.step_module = self._wrap()
        config = self.config
        logger.info(
            "training %s/%s on %s (%s, %d process(es)), %d epochs x %d steps, lr %.4g, run folder %s",
            config.arch, config.variant, config.dataset, self.precision.describe(), self.context.world_size,
            config.epochs, self.data.steps_per_epoch, config.resolved_lr(), self.run_dir,
        )
        status = "completed"
        epochs_bar = tqdm(
            total=config.epochs, initial=self.epoch, desc=config.name, unit="epoch",
            disable=not (config.progress and self.context.is_main),
        )
        with stop_requests() as stop, epochs_bar:
            while self.epoch < config.epochs:
                if not self._train_epoch(stop):
                    status = "interrupted"
                    break
                record = self._finish_epoch()
                epochs_bar.update(1)
                epochs_bar.set_postfix(heldout_acc=f"{record['heldout_acc']:.4f}")
                if self.epoch < config.epochs and self._stop_agreed(stop):
                    status = "interrupted"
                    break
        if status == "interrupted":
            self._log_interruption(stop)
        if self.context.distributed:
            torch.distributed.barrier()
        return TrainResult(
            config=config,
            run_dir=self.run_dir,
            status=status,
            epochs_completed=self.epoch,
            best_heldout_acc=self.best_acc if self.best_epoch else float("nan"),
            best_epoch=self.best_epoch,
            history=self.history,
            model=self.model,
            stop_signal=stop.signal_name if status == "interrupted" else "",
        )

    def _stop_agreed(self, stop: StopRequest) -> bool:
        # Every process must stop at the same step, or the others would wait forever in
        # the next gradient all-reduce.
        if not self.context.distributed:
            return stop.requested
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _log_interruption(self, stop: StopRequest) -> None:
        last = self.run_dir / LAST
        where = f"{last} (after epoch {self.epoch})" if last.is_file() else "none (no epoch completed)"
        logger.warning(
            "training stopped by %s during epoch %d; last complete checkpoint: %s. "
            "Continue with --resume (train(config, resume=True)).",
            stop.signal_name or "a stop request", self.epoch + 1, where,
        )

    def _train_epoch(self, stop: StopRequest) -> bool:
        """Run one epoch of optimizer steps; return False if a stop signal arrived."""
        config, data = self.config, self.data
        if data.sampler is not None:
            data.sampler.set_epoch(self.epoch)
        self.model.train()
        self.epoch_start = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, count
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(
            total=data.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{config.epochs}", unit="step", leave=False,
            disable=not (config.progress and self.context.is_main),
        )
        # With torch.compile, hooks would be traced into the graph; probe only in evaluation then.
        probe = record_activity(self.model) if not config.compile else _no_probe()
        with bar, probe as activity:
            for step, (images, labels) in enumerate(data.train_loader):
                if step >= data.steps_per_epoch:
                    break
                if self._stop_agreed(stop):
                    return False
                loss, correct = self._step(images, labels, step)
                sums += torch.stack([loss.double() * labels.numel(), correct.double(), torch.tensor(
                    float(labels.numel()), dtype=torch.float64, device=self.device)])
                bar.update(1)
                if (step + 1) % config.log_every == 0 or step + 1 == data.steps_per_epoch:
                    postfix = {"loss": f"{float(sums[0] / sums[2]):.4f}", "acc": f"{float(sums[1] / sums[2]):.4f}"}
                    if activity is not None:
                        postfix["rate"] = f"{activity.mean_firing_rate():.3f}"
                    bar.set_postfix(postfix)
        self.train_sums = all_reduce_sum(sums, self.context)
        return True

    def _step(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with self.precision.autocast():
            logits = self.step_module(direct_encode(images, self.config.time_steps))
        logits = logits.float()
        loss = F.cross_entropy(logits, labels)
        if not bool(torch.isfinite(loss)):
            last = self.run_dir / LAST
            last_good = f"{last} (after epoch {self.epoch})" if last.is_file() else "none written yet"
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.epoch + 1}, step {step + 1} "
                f"(global step {self.global_step + 1}); stopped. Last good checkpoint: {last_good}. "
                "Lower lr, lengthen warmup_epochs or set grad_clip_norm, then start again"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.global_step += 1
        correct = (logits.detach().argmax(dim=1) == labels).sum()
        return loss.detach(), correct

    def _finish_epoch(self) -> dict[str, Any]:
        heldout = evaluate(
            self.model, self.data.heldout_loader, self.config.time_steps, self.device,
            context=self.context, autocast=self.precision.autocast_factory(),
        )
        loss_sum, correct, count = (float(value) for value in self.train_sums)
        self.epoch += 1
        record = {
            "epoch": self.epoch,
            "step": self.global_step,
            "lr": self.last_lr,
            "train_loss": loss_sum / count if count else math.nan,
            "train_acc": correct / count if count else math.nan,
            "heldout_loss": heldout["loss"],
            "heldout_acc": heldout["acc"],
            "firing_rate": heldout["firing_rate"],
            "current_mean": heldout["current_mean"],
            "current_std": heldout["current_std"],
            "seconds": time.perf_counter() - self.epoch_start,
        }
        self.history.append(record)
        improved = heldout["acc"] > self.best_acc
        if improved:
            self.best_acc, self.best_epoch = heldout["acc"], self.epoch
        if self.context.is_main:
            append_metrics(self.run_dir / METRICS_FILE, record)
            payload = self._checkpoint_payload()
            save_checkpoint(self.run_dir / LAST, payload)
            if improved:
                save_checkpoint(self.run_dir / BEST, payload)
        logger.info(
            "epoch %d/%d: train loss %.4f acc %.4f, held-out loss %.4f acc %.4f, %.1f s",
            self.epoch, self.config.epochs, record["train_loss"], record["train_acc"],
            record["heldout_loss"], record["heldout_acc"], record["seconds"],
        )
        return record

    def _checkpoint_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "rng": capture_rng_state(self.data.generator),
            "metrics": self.history[-1],
        }


class _no_probe:
    """Stand-in for :func:`record_activity` that records nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        return None
