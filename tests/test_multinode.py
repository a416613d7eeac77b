"""Multi-node DDP on this machine: 2 nodes x 1 process over gloo on 127.0.0.1, started by torchrun as on a cluster."""
import os
import re
import socket
import subprocess
import sys

import pytest

from src.models import read_checkpoint
from src.evaluation.evaluate import main as evaluate

from .conftest import ROOT
from .test_streaming import photos


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_over_gloo_train_on_disjoint_shards_and_the_checkpoint_evaluates(tmp_path):
    folder, port = photos(tmp_path / "f", n=12), free_port()

    def node(rank: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
               "-m", "src.training.train", "--strategy", "ddp", "--num-nodes", "2", "--devices", "1",
               "--data", str(folder), "--max-steps", "10", "--steps-per-epoch", "5", "--finish-after", "6",
               "--crop", "24", "--batch-size", "4", "--logger", "none", "--quiet",
               "--output", str(tmp_path / "m.ckpt"), "--run-dir", str(tmp_path / "runs")]
        env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    nodes = [node(0), node(1)]
    try:
        outputs = [p.communicate(timeout=400)[0] for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    shards = {}
    for out in outputs:
        m = re.search(r"data: rank (\d) of 2 crops from (\d+) of (\d+) training images: (.*)", out)
        assert m, out[-3000:]
        shards[int(m[1])] = set(m[4].split(", "))
    assert shards.keys() == {0, 1} and shards[0] and shards[1] and not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) == int(m[3])
    assert read_checkpoint(tmp_path / "m.ckpt")["info"]["steps"] == 10
    assert evaluate(["--checkpoint", str(tmp_path / "m.ckpt"), "--data", str(folder),
                     "--figures", str(tmp_path / "figures")]) == 0
