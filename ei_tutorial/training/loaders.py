"""Data loaders of a training run, sharded across processes and reproducible on resume.

The training loader shuffles with its own :class:`torch.Generator` (seeded from the
config) in a single process, and with a :class:`~torch.utils.data.DistributedSampler`
(seeded, reshuffled by epoch) across processes. Checkpoints store the generator's
state, so a resumed run sees the same batches as an uninterrupted one. The held-out
set is split into disjoint, unpadded shards, so summed counts are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ei_tutorial.data import dataset_info, load_datasets
from ei_tutorial.training.config import TrainConfig
from ei_tutorial.training.distributed import DistributedContext


@dataclass
class RunData:
    """Loaders and facts about the data of one run.

    Attributes:
        train_loader: Training batches ``(images [B, C, H, W], labels [B])`` of this process.
        heldout_loader: Held-out batches of this process's shard.
        generator: The training loader's shuffling generator (saved in checkpoints).
        sampler: The DistributedSampler, or None in a single process.
        train_set: The full training set (all processes), for E-I Init.
        steps_per_epoch: Optimizer steps per epoch, after ``max_steps_per_epoch``.
        in_channels, image_size, num_classes: Dataset shape facts.
    """

    train_loader: DataLoader
    heldout_loader: DataLoader
    generator: torch.Generator
    sampler: Optional[DistributedSampler]
    train_set: Dataset
    steps_per_epoch: int
    in_channels: int
    image_size: int
    num_classes: int


def _first(dataset: Dataset, count: Optional[int]) -> Dataset:
    if count is None or count >= len(dataset):
        return dataset
    return Subset(dataset, range(count))


def build_run_data(config: TrainConfig, context: DistributedContext) -> RunData:
    """Load the dataset of ``config`` and build this process's loaders.

    ``batch_size`` is the global batch: each of ``W`` processes loads
    ``batch_size // W`` images per step.

    Raises:
        ValueError: If ``batch_size`` is smaller than the number of processes.
        ei_tutorial.data.DatasetNotFoundError: If the dataset is missing.
    """
    info = dataset_info(config.dataset)
    train_set, heldout_set = load_datasets(config.dataset, augment=config.augment)
    train_set = _first(train_set, config.train_subset)
    heldout_set = _first(heldout_set, config.heldout_subset)

    if config.batch_size < context.world_size:
        raise ValueError(
            f"batch_size={config.batch_size} is smaller than the {context.world_size} processes; "
            "use a batch size of at least one image per process"
        )
    per_process = config.batch_size // context.world_size
    generator = torch.Generator().manual_seed(config.seed)
    sampler = None
    if context.distributed:
        sampler = DistributedSampler(
            train_set, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=config.seed,
            drop_last=True,
        )
    common = dict(
        num_workers=config.num_workers,
        pin_memory=context.device.type == "cuda",
        persistent_workers=config.num_workers > 0,
    )
    train_loader = DataLoader(
        train_set,
        batch_size=per_process,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        drop_last=False,
        **common,
    )
    shard = Subset(heldout_set, range(context.rank, len(heldout_set), context.world_size))
    heldout_loader = DataLoader(shard, batch_size=config.eval_batch_size, shuffle=False, **common)

    steps = len(train_loader)
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    return RunData(
        train_loader, heldout_loader, generator, sampler, train_set, steps,
        info.channels, info.image_size, info.num_classes,
    )


def init_batch(train_set: Dataset, count: int, seed: int) -> torch.Tensor:
    """Return ``count`` training images chosen with ``seed``, the same on every process.

    Returns:
        Images ``[count, C, H, W]`` (fewer if the training set is smaller).
    """
    generator = torch.Generator().manual_seed(seed)
    count = min(count, len(train_set))
    indices = torch.randperm(len(train_set), generator=generator)[:count].tolist()
    return torch.stack([train_set[index][0] for index in indices])
