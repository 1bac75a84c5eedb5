"""Tests for ei_tutorial.data: real MNIST files, the offline error and the encodings."""

from __future__ import annotations

import gzip
import logging
import shutil

import pytest
import torch
import torchvision
from torch.utils.data import TensorDataset

from ei_tutorial import data

@pytest.fixture
def shared_mnist(monkeypatch, tmp_path, mnist_data_root):
    """Point the loader at the real MNIST files and an empty, private cache."""
    monkeypatch.setenv("EI_TUTORIAL_DATA", str(mnist_data_root))
    monkeypatch.setenv("EI_TUTORIAL_CACHE", str(tmp_path / "cache"))
    # The loader's messages name resolved folders, and mnist_data_root is resolved too.
    return mnist_data_root / "mnist"


@pytest.fixture(scope="module")
def mnist_split(mnist_data_root):
    """Load the real MNIST test split once for the read-only checks below."""
    return data.load_datasets("mnist")


def test_dataset_info_values():
    assert data.DATASETS == ("mnist", "fashion_mnist", "cifar10", "cifar100")
    mnist = data.dataset_info("mnist")
    assert (mnist.channels, mnist.image_size, mnist.num_classes) == (1, 28, 10)
    cifar100 = data.dataset_info("CIFAR100")
    assert (cifar100.channels, cifar100.image_size, cifar100.num_classes) == (3, 32, 100)
    assert data.dataset_info("fashion-mnist").name == "fashion_mnist"


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        data.load_datasets("imagenet")
    message = str(excinfo.value)
    assert "'imagenet'" in message
    for name in data.DATASETS:
        assert name in message


def test_mnist_test_only_split_sizes(mnist_split):
    train, heldout = mnist_split
    assert isinstance(train, TensorDataset)
    assert len(train) == 8000
    assert len(heldout) == 2000


def test_mnist_values_and_labels(mnist_split):
    for part in mnist_split:
        images, labels = part.tensors
        assert images.shape[1:] == (1, 28, 28)
        assert images.dtype == torch.float32
        assert float(images.min()) == 0.0
        assert float(images.max()) == 1.0
        assert labels.dtype == torch.int64
        assert set(labels.unique().tolist()) == set(range(10))


def test_mnist_split_covers_test_set_once(mnist_split, shared_mnist):
    train, heldout = mnist_split
    raw = data.read_idx(shared_mnist / "t10k-images-idx3-ubyte.gz")
    assert raw.shape == (10000, 28, 28)
    combined = torch.cat([train.tensors[0], heldout.tensors[0]]).mul(255).round().to(torch.uint8)
    # Every original image appears exactly once across the two parts.
    assert sorted(map(bytes, combined.flatten(1).numpy())) == sorted(map(bytes, raw.flatten(1).numpy()))


def test_mnist_split_deterministic(mnist_split, shared_mnist):
    again_train, again_heldout = data.load_datasets("mnist")
    train, heldout = mnist_split
    assert torch.equal(again_train.tensors[0], train.tensors[0])
    assert torch.equal(again_heldout.tensors[1], heldout.tensors[1])


def test_mnist_split_logs_warning(shared_mnist, caplog):
    with caplog.at_level(logging.WARNING, logger="ei_tutorial.data"):
        data.load_datasets("mnist")
    messages = [record.getMessage() for record in caplog.records if record.name == "ei_tutorial.data"]
    assert len(messages) == 1
    assert "8000" in messages[0]
    assert "2000" in messages[0]
    assert str(shared_mnist) in messages[0]


def test_mnist_reads_without_writing(shared_mnist, tmp_path):
    before = sorted(path.name for path in shared_mnist.iterdir())
    data.load_datasets("mnist")
    assert sorted(path.name for path in shared_mnist.iterdir()) == before
    assert not (tmp_path / "cache").exists()


def test_mnist_torchvision_layout_full_split(monkeypatch, tmp_path, shared_mnist):
    # A torchvision-style folder with both splits, the train files un-gzipped.
    raw = tmp_path / "local" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(shared_mnist / f"{stem}.gz", raw / f"{stem}.gz")
        with gzip.open(shared_mnist / f"{stem}.gz", "rb") as src:
            (raw / stem.replace("t10k", "train")).write_bytes(src.read())
    monkeypatch.setenv("EI_TUTORIAL_DATA", str(tmp_path / "local"))

    train, heldout = data.load_datasets("mnist")
    assert len(train) == 10000
    assert len(heldout) == 10000
    assert torch.equal(train.tensors[0], heldout.tensors[0])


def test_make_loaders_batches_and_seed(shared_mnist):
    train_a, heldout = data.make_loaders("mnist", 32, seed=3)
    train_b, _ = data.make_loaders("mnist", 32, seed=3)
    images_a, labels_a = next(iter(train_a))
    images_b, labels_b = next(iter(train_b))
    assert images_a.shape == (32, 1, 28, 28)
    assert torch.equal(labels_a, labels_b)
    assert torch.equal(images_a, images_b)
    assert len(heldout.dataset) == 2000


def test_make_loaders_train_size_subset(shared_mnist):
    train_a, heldout = data.make_loaders("mnist", 50, seed=1, train_size=500)
    train_b, _ = data.make_loaders("mnist", 50, seed=1, train_size=500)
    assert len(train_a.dataset) == 500
    assert train_a.dataset.indices == train_b.dataset.indices
    assert len(set(train_a.dataset.indices)) == 500
    assert len(heldout.dataset) == 2000
    whole, _ = data.make_loaders("mnist", 50, train_size=100_000)
    assert len(whole.dataset) == 8000


def test_make_loaders_rejects_bad_train_size():
    with pytest.raises(ValueError, match="train_size must be a positive int, got 0"):
        data.make_loaders("mnist", 10, train_size=0)


def test_make_loaders_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        data.make_loaders("mnist", 0)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 1]) + (5).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(ValueError, match="truncated or corrupted"):
        data.read_idx(path)


def _block_downloads(monkeypatch):
    def fail_download(self):
        raise RuntimeError("network is unreachable (simulated in tests)")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fail_download)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", fail_download)


@pytest.mark.parametrize(
    ("name", "display_name", "local_sub"),
    [
        ("fashion_mnist", "Fashion-MNIST", "FashionMNIST/raw"),
        ("cifar10", "CIFAR-10", "cifar-10-batches-py"),
        ("cifar100", "CIFAR-100", "cifar-100-python"),
    ],
)
def test_offline_error_names_dataset_and_folders(monkeypatch, tmp_path, name, display_name, local_sub):
    local, cache = tmp_path / "local", tmp_path / "cache"
    local.mkdir()
    monkeypatch.setenv("EI_TUTORIAL_DATA", str(local))
    monkeypatch.setenv("EI_TUTORIAL_CACHE", str(cache))
    _block_downloads(monkeypatch)

    with pytest.raises(data.DatasetNotFoundError) as excinfo:
        data.load_datasets(name)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    assert display_name in message
    assert str(local / local_sub) in message
    assert str(cache) in message
    assert "simulated in tests" in message
    assert "EI_TUTORIAL_DATA" in message


def test_offline_error_without_data_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("EI_TUTORIAL_DATA", raising=False)
    monkeypatch.setenv("EI_TUTORIAL_CACHE", str(tmp_path / "cache"))
    _block_downloads(monkeypatch)
    with pytest.raises(data.DatasetNotFoundError) as excinfo:
        data.load_datasets("mnist")
    assert str(tmp_path / "cache" / "MNIST" / "raw") in str(excinfo.value)


def test_candidate_folders_order(monkeypatch, tmp_path):
    monkeypatch.setenv("EI_TUTORIAL_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("EI_TUTORIAL_CACHE", str(tmp_path / "c"))
    assert data.candidate_folders("mnist") == [
        tmp_path / "d" / "mnist",
        tmp_path / "d" / "MNIST" / "raw",
        tmp_path / "c" / "MNIST" / "raw",
    ]


def test_cifar_augmentation_keeps_range_and_shape():
    torch.manual_seed(0)
    augment = data.cifar_augmentation("cifar10")
    image = torch.rand(3, 32, 32) * 0.5 + 0.5  # strictly positive, so Cutout's zeros are visible
    out = augment(image)
    assert out.shape == (3, 32, 32)
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0
    assert int((out == 0).all(dim=0).sum()) >= 8 * 8  # the Cutout square, clipped at most to a quarter


def test_cutout_zeroes_one_square():
    torch.manual_seed(1)
    out = data.Cutout(4)(torch.ones(1, 10, 10))
    rows = (out[0] == 0).any(dim=1).nonzero().flatten()
    cols = (out[0] == 0).any(dim=0).nonzero().flatten()
    assert int((out == 0).sum()) == len(rows) * len(cols)
    assert len(rows) <= 4
    assert len(cols) <= 4


def test_direct_encode_is_view():
    images = torch.rand(2, 1, 3, 3)
    encoded = data.direct_encode(images, 5)
    assert encoded.shape == (5, 2, 1, 3, 3)
    assert encoded.data_ptr() == images.data_ptr()
    assert torch.equal(encoded[4], images)


@pytest.mark.parametrize("T", [0, -1, 2.0, True])
def test_direct_encode_rejects_bad_T(T):
    with pytest.raises(ValueError, match="positive int"):
        data.direct_encode(torch.rand(1, 4), T)


def test_rate_encode_reproducible_and_rate():
    images = torch.tensor([[0.0, 0.25, 1.0]]).expand(4000, 3)
    first = data.rate_encode(images, 5, torch.Generator().manual_seed(7))
    second = data.rate_encode(images, 5, torch.Generator().manual_seed(7))
    assert first.shape == (5, 4000, 3)
    assert torch.equal(first, second)
    rates = first.mean(dim=(0, 1))
    assert float(rates[0]) == 0.0
    assert abs(float(rates[1]) - 0.25) < 0.02  # 20,000 draws: standard error about 0.003
    assert float(rates[2]) == 1.0


def test_rate_encode_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.rate_encode(torch.tensor([[-0.5, 1.0]]), 3)


def test_latency_encode_one_spike_brightest_first():
    images = torch.tensor([[0.0, 0.3, 0.6, 1.0]])
    spikes = data.latency_encode(images, 5)
    assert spikes.shape == (5, 1, 4)
    assert spikes.sum(dim=0).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    first_spike = spikes[:, 0, 1:].argmax(dim=0).tolist()
    assert first_spike == sorted(first_spike, reverse=True)
    assert first_spike[-1] == 0
