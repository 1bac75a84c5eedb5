"""Tests of ei_tutorial.training.distributed: two CPU processes (gloo, loopback) train in lockstep."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ei_tutorial.training import read_metrics, train
from ei_tutorial.training.checkpoint import LAST, load_checkpoint
from ei_tutorial.training.metrics import METRICS_FILE

WORLD_SIZE = 2

# Two processes start torch and join a process group: tens of seconds on a busy 2-core CPU.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, data_root: str, out_dir: str, variant: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD_SIZE),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "EI_TUTORIAL_DATA": data_root,
        }
    )
    if Path("/sys/class/net/lo").exists():
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # keep gloo's traffic on the Linux loopback interface
    config = dict(
        name="ddp", out_dir=out_dir, arch="mlp", widths=[32], variant=variant, epochs=2, batch_size=32,
        eval_batch_size=64, lr=0.05, warmup_epochs=0.5, train_subset=256, heldout_subset=96,
        init_batch_size=64, progress=False, device="cpu",
    )
    result = train(config)
    torch.save(
        {"state": result.model.state_dict(), "history": result.history},
        Path(out_dir) / f"rank{rank}.pt",
    )


@pytest.fixture(scope="module")
def ddp_run(mnist_data_root, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(mnist_data_root), str(out_dir), "ei"), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
    return ranks, out_dir


def test_ranks_end_with_identical_weights(ddp_run):
    ranks, _ = ddp_run
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_ranks_report_identical_metrics(ddp_run):
    ranks, _ = ddp_run
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rank["history"]] for rank in ranks]
    assert strip[0] == strip[1]


def test_distributed_steps_split_the_batch(ddp_run):
    ranks, _ = ddp_run
    # 256 images, 16 per process per step, 2 processes: 8 steps per epoch.
    assert [record["step"] for record in ranks[0]["history"]] == [8, 16]


def test_only_rank_zero_writes(ddp_run):
    _, out_dir = ddp_run
    run_dir = out_dir / "ddp"
    records = read_metrics(run_dir / METRICS_FILE)
    assert [record["epoch"] for record in records] == [1, 2]
    assert load_checkpoint(run_dir / LAST)["epoch"] == 2


def test_heldout_counts_every_image_once(ddp_run):
    ranks, _ = ddp_run
    checkpoint_metrics = ranks[0]["history"][-1]
    assert 0.0 <= checkpoint_metrics["heldout_acc"] <= 1.0
    # 96 held-out images split 48/48: accuracy is a multiple of 1/96.
    assert (checkpoint_metrics["heldout_acc"] * 96) == pytest.approx(round(checkpoint_metrics["heldout_acc"] * 96))


def test_weights_changed_by_training(ddp_run):
    from ei_tutorial.models import build_model

    ranks, _ = ddp_run
    fresh = build_model("mlp", "ei", widths=[32]).state_dict()
    trained = ranks[0]["state"]
    assert not torch.equal(fresh["readout.weight_ee"], trained["readout.weight_ee"])
