"""Image datasets for the course and the spike encodings that feed them to a network.

Four datasets are supported: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100. Every
dataset yields ``(image, label)`` pairs, with ``image`` a float tensor ``[C, H, W]``
in [0, 1] and ``label`` an int. Images are not normalised by mean and standard
deviation, so inputs stay non-negative, as the E-I layers require.

Where the files come from, in this order:

1. ``EI_TUTORIAL_DATA``, a folder of local files. MNIST may sit in ``mnist/`` as
   the gzip'd IDX files, or in torchvision's layout ``MNIST/raw``; Fashion-MNIST in
   ``fashion_mnist/`` or ``FashionMNIST/raw``; CIFAR in ``cifar-10-batches-py`` and
   ``cifar-100-python``. Files are read in place and nothing is written there.
2. ``EI_TUTORIAL_CACHE`` (default ``~/.cache/ei_tutorial``), in torchvision's layout.
3. A download by torchvision into the cache folder.

The first folder that contains the test split is used. When a folder holds only
the MNIST or Fashion-MNIST test split (10,000 images), that split is divided into
8,000 training and 2,000 held-out images with a fixed seed, and a WARNING on the
``ei_tutorial.data`` logger reports the split. When nothing is found and the download fails,
:class:`DatasetNotFoundError` lists every folder tried.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

logger = logging.getLogger(__name__)

DATA_ENV_VAR = "EI_TUTORIAL_DATA"
CACHE_ENV_VAR = "EI_TUTORIAL_CACHE"
DEFAULT_CACHE = Path("~/.cache/ei_tutorial")

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")

#: Seed of the permutation that splits a lone test split into training and held-out parts.
SPLIT_SEED = 0
SPLIT_TRAIN_SIZE = 8000

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and label facts about one dataset.

    Attributes:
        name: Name as accepted by :func:`load_datasets`.
        display_name: Name for messages and plots.
        channels: Image channels ``C``.
        image_size: Height and width ``H = W`` in pixels.
        num_classes: Number of labels, numbered from 0.
    """

    name: str
    display_name: str
    channels: int
    image_size: int
    num_classes: int


_INFO = {
    "mnist": DatasetInfo("mnist", "MNIST", 1, 28, 10),
    "fashion_mnist": DatasetInfo("fashion_mnist", "Fashion-MNIST", 1, 28, 10),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", 3, 32, 10),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100", 3, 32, 100),
}

# Folders under EI_TUTORIAL_DATA that may hold each dataset, in search order.
_LOCAL_FOLDERS = {
    "mnist": ("mnist", "MNIST/raw"),
    "fashion_mnist": ("fashion_mnist", "FashionMNIST/raw"),
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
}

# The folder that a torchvision download creates under the cache root.
_CACHE_FOLDERS = {
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
}

_TORCHVISION_CLASSES = {
    "mnist": torchvision.datasets.MNIST,
    "fashion_mnist": torchvision.datasets.FashionMNIST,
    "cifar10": torchvision.datasets.CIFAR10,
    "cifar100": torchvision.datasets.CIFAR100,
}

# Side of the zeroed square in Cutout, as used for CIFAR-10 and CIFAR-100 by DeVries & Taylor (2017).
_CUTOUT_SIZE = {"cifar10": 16, "cifar100": 8}


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


def _check_name(name: str) -> str:
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _INFO:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """Return the channels, image size and number of classes of a dataset.

    Args:
        name: One of :data:`DATASETS` (case-insensitive; ``-`` may replace ``_``).

    Returns:
        The dataset's :class:`DatasetInfo`.

    Raises:
        ValueError: If ``name`` is not a supported dataset.
    """
    return _INFO[_check_name(name)]


def data_dir() -> Path | None:
    """Return the folder named by ``EI_TUTORIAL_DATA``, or None when it is unset or empty."""
    raw = os.environ.get(DATA_ENV_VAR, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def cache_dir() -> Path:
    """Return the download cache folder: ``EI_TUTORIAL_CACHE`` or ``~/.cache/ei_tutorial``."""
    raw = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(raw or DEFAULT_CACHE).expanduser().resolve()


def candidate_folders(name: str) -> list[Path]:
    """List the folders searched for a dataset's files, in search order.

    Args:
        name: One of :data:`DATASETS`.

    Returns:
        The folders under ``EI_TUTORIAL_DATA`` (when set), then the cache folder.
    """
    key = _check_name(name)
    folders = []
    local = data_dir()
    if local is not None:
        folders.extend(local / sub for sub in _LOCAL_FOLDERS[key])
    folders.append(cache_dir() / _CACHE_FOLDERS[key])
    return folders


# ---------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files
# ---------------------------------------------------------------------------


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an unsigned-byte IDX file, gzip'd or not, without writing anything.

    Args:
        path: File in the IDX format of the MNIST database; a ``.gz`` suffix means gzip'd.

    Returns:
        A ``torch.uint8`` tensor with the shape stored in the file header.

    Raises:
        ValueError: If the header is not that of an unsigned-byte IDX file or the
            file is shorter than its header states.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()

    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
    # dimensions, then each dimension as a big-endian 32-bit integer.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex()}).")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path} is truncated or corrupted: it contains {len(raw) - offset} data bytes, but its "
            f"header shape {shape} requires {expected}. Download the file again."
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)
    return torch.from_numpy(array.copy())


def _read_idx_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    image_stem, label_stem = _IDX_FILES[split]
    image_path = _find_file(folder, image_stem)
    label_path = _find_file(folder, label_stem)
    if image_path is None or label_path is None:
        return None
    return read_idx(image_path), read_idx(label_path)


def _to_tensor_dataset(images: torch.Tensor, labels: torch.Tensor) -> TensorDataset:
    # uint8 [N, H, W] -> float32 [N, 1, H, W] in [0, 1]; labels int64.
    return TensorDataset(images.unsqueeze(1).float().div_(255.0), labels.long())


def _split_test_only(
    info: DatasetInfo, images: torch.Tensor, labels: torch.Tensor, folder: Path
) -> tuple[TensorDataset, TensorDataset]:
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    order = torch.randperm(len(images), generator=generator)
    train_idx, heldout_idx = order[:SPLIT_TRAIN_SIZE], order[SPLIT_TRAIN_SIZE:]
    logger.warning(
        "%s: only the test split (%d images) is in %s, so %d of them are used for training "
        "and %d as held-out data (fixed seed %d). Accuracies are therefore not comparable "
        "with published test-set numbers. For the full training split, go online or set "
        "%s to a folder that also holds the training files.",
        info.display_name, len(images), folder, len(train_idx), len(heldout_idx), SPLIT_SEED,
        DATA_ENV_VAR,
    )
    train = _to_tensor_dataset(images[train_idx], labels[train_idx])
    heldout = _to_tensor_dataset(images[heldout_idx], labels[heldout_idx])
    return train, heldout


def _load_idx_folder(info: DatasetInfo, folder: Path) -> tuple[Dataset, Dataset] | None:
    test = _read_idx_split(folder, "test")
    if test is None:
        return None
    train = _read_idx_split(folder, "train")
    if train is None:
        return _split_test_only(info, *test, folder)
    return _to_tensor_dataset(*train), _to_tensor_dataset(*test)


# ---------------------------------------------------------------------------
# CIFAR: torchvision's pickled batches, augmented per image
# ---------------------------------------------------------------------------


class Cutout(torch.nn.Module):
    """Zero one square patch at a uniformly random centre (DeVries & Taylor, 2017).

    The patch is clipped at the image border, so it may cover less than
    ``size * size`` pixels.

    Args:
        size: Side of the square in pixels.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"Cutout size must be a positive number of pixels, got {size}.")
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Return a copy of ``image`` (``[C, H, W]``) with one square set to zero."""
        height, width = image.shape[-2:]
        centre_y = int(torch.randint(height, ()).item())
        centre_x = int(torch.randint(width, ()).item())
        top, bottom = max(centre_y - self.size // 2, 0), min(centre_y + (self.size + 1) // 2, height)
        left, right = max(centre_x - self.size // 2, 0), min(centre_x + (self.size + 1) // 2, width)
        out = image.clone()
        out[..., top:bottom, left:right] = 0.0
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}"


def cifar_augmentation(name: str) -> torch.nn.Module:
    """Build the CIFAR training augmentation: random crop with padding 4, horizontal flip, Cutout.

    There is no mean/std normalisation, so augmented images stay in [0, 1].

    Args:
        name: ``"cifar10"`` (Cutout 16 pixels) or ``"cifar100"`` (Cutout 8 pixels).

    Returns:
        A module mapping a float image ``[C, H, W]`` to an augmented one.

    Raises:
        ValueError: If ``name`` is not a CIFAR dataset.
    """
    key = _check_name(name)
    if key not in _CUTOUT_SIZE:
        raise ValueError(f"Augmentation is defined for cifar10 and cifar100 only, got {name!r}.")
    from torchvision.transforms import v2

    return torch.nn.Sequential(
        v2.RandomCrop(32, padding=4),
        v2.RandomHorizontalFlip(),
        Cutout(_CUTOUT_SIZE[key]),
    )


class ImageDataset(Dataset):
    """In-memory uint8 images that are converted to float ``[C, H, W]`` in [0, 1] per item.

    Args:
        images: ``torch.uint8`` tensor ``[N, C, H, W]``.
        labels: Integer tensor ``[N]``.
        transform: Optional module applied to each float image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels; expected equal counts.")
        self.images = images
        self.labels = labels.long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def _load_cifar_folder(key: str, folder: Path, augment: bool) -> tuple[Dataset, Dataset] | None:
    if not folder.is_dir():
        return None
    tv_class = _TORCHVISION_CLASSES[key]
    # torchvision reads the batches from root/<folder name> and checks their MD5 sums; it writes nothing.
    try:
        splits = [tv_class(root=str(folder.parent), train=train, download=False) for train in (True, False)]
    except RuntimeError as error:
        logger.warning("Skipping %s: torchvision could not read it (%s).", folder, error)
        return None
    datasets = []
    for split, transform in zip(splits, (cifar_augmentation(key) if augment else None, None)):
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()  # [N, H, W, C] -> [N, C, H, W]
        datasets.append(ImageDataset(images, torch.tensor(split.targets), transform))
    return datasets[0], datasets[1]


# ---------------------------------------------------------------------------
# Public loading API
# ---------------------------------------------------------------------------


def _load_from_folder(key: str, folder: Path, augment: bool) -> tuple[Dataset, Dataset] | None:
    if key in ("cifar10", "cifar100"):
        return _load_cifar_folder(key, folder, augment)
    return _load_idx_folder(_INFO[key], folder)


def _download(key: str, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        _TORCHVISION_CLASSES[key](root=str(root), train=train, download=True)


_IDX_FILE_LIST = "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz and optionally the train-* pair"

# How to lay out local files, shown in the error when a dataset cannot be found.
_LAYOUT_HINTS = {
    "mnist": f"mnist/ ({_IDX_FILE_LIST}) or torchvision's MNIST/raw/",
    "fashion_mnist": f"fashion_mnist/ ({_IDX_FILE_LIST}) or torchvision's FashionMNIST/raw/",
    "cifar10": "cifar-10-batches-py/ (the extracted cifar-10-python.tar.gz)",
    "cifar100": "cifar-100-python/ (the extracted cifar-100-python.tar.gz)",
}


def _not_found_message(key: str, folders: list[Path], error: BaseException) -> str:
    info = _INFO[key]
    tried = "\n".join(f"  - {folder}" for folder in folders)
    return (
        f"{info.display_name} ({key!r}) was not found in any of these folders:\n{tried}\n"
        f"and downloading it into {cache_dir()} failed: {type(error).__name__}: {error}\n"
        f"To fix this, connect to the internet and run again, or set {DATA_ENV_VAR} to a "
        f"folder that contains {_LAYOUT_HINTS[key]}."
    )


def load_datasets(name: str, *, augment: bool = False) -> tuple[Dataset, Dataset]:
    """Load a dataset's training and held-out parts, from local files or a download.

    See the module docstring for where files are searched. The held-out part is the
    official test split, except when a folder holds only the MNIST or Fashion-MNIST
    test split: then 8,000 of its images train and 2,000 are held out (fixed seed,
    logged as a WARNING).

    Args:
        name: One of :data:`DATASETS` (case-insensitive; ``-`` may replace ``_``).
        augment: Apply :func:`cifar_augmentation` to the CIFAR training part. MNIST and
            Fashion-MNIST have no augmentation and ignore this flag.

    Returns:
        ``(train, heldout)`` datasets of ``(image, label)`` pairs, with ``image`` a float
        tensor ``[C, H, W]`` in [0, 1]. MNIST and Fashion-MNIST are in-memory
        ``TensorDataset`` objects, whose labels are int64 tensors of shape ``[]``.

    Raises:
        ValueError: If ``name`` is not a supported dataset.
        DatasetNotFoundError: If no folder contains the files and the download fails.
    """
    key = _check_name(name)
    if augment and key not in _CUTOUT_SIZE:
        logger.info("%s has no augmentation; augment=True is ignored.", _INFO[key].display_name)

    folders = candidate_folders(key)
    for folder in folders:
        loaded = _load_from_folder(key, folder, augment)
        if loaded is not None:
            return loaded

    try:
        _download(key, cache_dir())
    except (OSError, RuntimeError) as error:
        raise DatasetNotFoundError(_not_found_message(key, folders, error)) from error

    loaded = _load_from_folder(key, folders[-1], augment)
    if loaded is None:
        raise DatasetNotFoundError(
            _not_found_message(key, folders, RuntimeError(f"the download left no files in {folders[-1]}"))
        )
    return loaded


def make_loaders(
    name: str,
    batch_size: int,
    *,
    augment: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    heldout_batch_size: int | None = None,
    train_size: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Build the training and held-out data loaders of a dataset.

    The training loader reshuffles every epoch from a generator seeded with ``seed``,
    so two calls with the same seed give the same batches (also with workers, whose
    seeds derive from that generator). The held-out loader keeps the dataset order.

    Args:
        name: One of :data:`DATASETS`.
        batch_size: Images per training batch.
        augment: Passed to :func:`load_datasets`.
        num_workers: Worker processes per loader (0 loads in the calling process).
        seed: Seed of the training shuffle.
        heldout_batch_size: Images per held-out batch; defaults to ``batch_size``.
        train_size: Train on a random subset of at most this many images, drawn with
            ``seed``; None uses the whole training part. Quick chapter settings use it to
            keep one pass short whether or not the full training split is available.

    Returns:
        ``(train_loader, heldout_loader)`` yielding ``(images [B, C, H, W], labels [B])``.

    Raises:
        ValueError: If ``name`` is unknown, or a batch size, ``train_size`` or
            ``num_workers`` is not a positive int (``num_workers`` may be 0).
        DatasetNotFoundError: As :func:`load_datasets`.
    """
    sizes = (("batch_size", batch_size), ("heldout_batch_size", heldout_batch_size), ("train_size", train_size))
    for label, value in sizes:
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{label} must be a positive int, got {value!r}.")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}.")

    train, heldout = load_datasets(name, augment=augment)
    if train_size is not None and train_size < len(train):
        subset_order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        train = Subset(train, subset_order[:train_size].tolist())

    common = dict(
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
    train_loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        **common,
    )
    heldout_loader = DataLoader(heldout, batch_size=heldout_batch_size or batch_size, shuffle=False, **common)
    return train_loader, heldout_loader


# ---------------------------------------------------------------------------
# Spike encodings: images [B, ...] -> inputs over time [T, B, ...]
# ---------------------------------------------------------------------------


def _check_steps(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int number of time steps, got {T!r}.")


def _check_unit_range(images: torch.Tensor, encoding: str) -> None:
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{encoding} expects intensities in [0, 1], got values in [{low:.3g}, {high:.3g}]. "
            "Divide uint8 images by 255 and do not normalise them by mean and std."
        )


def direct_encode(images: torch.Tensor, T: int) -> torch.Tensor:
    """Repeat images over a new leading time dimension, so every time step receives the same input.

    The result is a view (``expand``), so it costs no memory. Clone it before writing to it.

    Args:
        images: Tensor ``[B, ...]``.
        T: Number of time steps.

    Returns:
        Tensor ``[T, B, ...]`` with ``out[t] == images`` for every ``t``.

    Raises:
        ValueError: If ``T`` is not a positive int.
    """
    _check_steps(T)
    return images.unsqueeze(0).expand(T, *images.shape)


def rate_encode(images: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw Bernoulli spikes whose per-step probability is the pixel intensity.

    Same distribution as ``snntorch.spikegen.rate(images, num_steps=T)``; drawing with
    ``torch.bernoulli`` directly lets a ``generator`` make the draw reproducible.

    Args:
        images: Float tensor ``[B, ...]`` with values in [0, 1].
        T: Number of time steps.
        generator: Random generator on the device of ``images``; None uses the global one.

    Returns:
        Tensor ``[T, B, ...]`` of 0/1 spikes with the dtype of ``images``.

    Raises:
        ValueError: If ``T`` is invalid or an intensity lies outside [0, 1].
    """
    _check_steps(T)
    _check_unit_range(images, "rate_encode")
    probabilities = images.unsqueeze(0).expand(T, *images.shape)
    return torch.bernoulli(probabilities, generator=generator)


def latency_encode(images: torch.Tensor, T: int, **snntorch_kwargs) -> torch.Tensor:
    """Encode each pixel as one spike whose time falls as its intensity rises.

    Calls ``snntorch.spikegen.latency(images, num_steps=T, ...)`` with ``linear=True``,
    ``normalize=True`` and ``clip=True`` by default: intensity 1 fires at step 0, the
    dimmest pixels fire at step ``T - 1``, and pixels below ``threshold`` (0.01) never fire.

    Args:
        images: Float tensor ``[B, ...]`` with values in [0, 1].
        T: Number of time steps.
        **snntorch_kwargs: Overrides for ``snntorch.spikegen.latency`` (``tau``,
            ``threshold``, ``linear``, ``normalize``, ``clip``, ...).

    Returns:
        Tensor ``[T, B, ...]`` with at most one spike per pixel.

    Raises:
        ValueError: If ``T`` is invalid or an intensity lies outside [0, 1].
    """
    from snntorch import spikegen

    _check_steps(T)
    _check_unit_range(images, "latency_encode")
    options = {"linear": True, "normalize": True, "clip": True, **snntorch_kwargs}
    return spikegen.latency(images, num_steps=T, **options)
