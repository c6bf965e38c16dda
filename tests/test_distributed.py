"""Distributed training: two gloo processes under torchrun against one process.

Each process trains on its shard of the users; DDP averages the gradients.
The weights must match a single-process run up to the order of float sums:
here, within 1e-4 (they differ by about 1e-6 after a few epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import distributed as dist

from tailrec.distributed import process_group, shard

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
TOLERANCE = 1e-4


def _train(out, processes: int, negatives: int) -> tuple[dict, dict]:
    command = [sys.executable]
    if processes > 1:
        command += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command += ["-m", "tailrec.train_distributed", "--synthetic", "4000", "--epochs", "3"]
    command += ["--batch-size", "64", "--negatives", str(negatives), "--out", str(out)]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((out / "training.json").read_text())
    return torch.load(out / "model.pt", weights_only=True), summary


@pytest.mark.parametrize("negatives", [0, 64], ids=["full_softmax", "sampled_softmax"])
def test_two_processes_match_one(tmp_path, negatives):
    one, one_summary = _train(tmp_path / "one", 1, negatives)
    two, two_summary = _train(tmp_path / "two", 2, negatives)
    assert (one_summary["processes"], two_summary["processes"]) == (1, 2)
    assert one.keys() == two.keys()
    for name in one:
        difference = (one[name] - two[name]).abs().max().item()
        assert difference <= TOLERANCE, f"{name} differs by {difference}"
    assert two_summary["train_loss"] == pytest.approx(one_summary["train_loss"], rel=1e-5)
    # Training moved the weights: a match of untrained models would prove nothing.
    assert one_summary["train_loss"][-1] < one_summary["train_loss"][0]


def test_shards_split_the_users_without_overlap():
    frame = pd.DataFrame({"user_index": [0, 1, 2, 3, 4, 5, 6], "item_index": range(7)})
    parts = [shard(frame, rank, 3) for rank in range(3)]
    assert sorted(pd.concat(parts)["item_index"]) == list(range(7))
    assert all(set(part["user_index"] % 3) <= {rank} for rank, part in enumerate(parts))
    assert shard(frame, 0, 1) is frame


def test_outside_torchrun_there_is_one_process():
    assert process_group() == (0, 1)


def test_bad_requests_are_refused_before_any_training(tmp_path, capsys):
    from tailrec.train_distributed import main

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        main(["--synthetic", "500", "--out", str(blocker / "runs")])
    assert "cannot be used as a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--synthetic", "500", "--negatives", "-1", "--out", str(tmp_path / "runs")])
    assert "at least 0" in capsys.readouterr().err
