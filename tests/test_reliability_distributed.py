"""DistributedDataParallel: 2 CPU processes (gloo) train like one process on the global batch."""
import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from snntorch_sparse import SparseLinearLeaky

WORLD = 2
GLOBAL_B = 8
STEPS = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    torch.manual_seed(0)
    net = nn.Sequential(SparseLinearLeaky(12, 16, beta=0.875, bth=0.4, learn_threshold=True),
                        SparseLinearLeaky(16, 10, beta=0.875, bth=0.4),
                        SparseLinearLeaky(10, 3, beta=0.875, readout=True)).double()
    with torch.no_grad():
        for m in net:
            m.fc.weight.mul_(3)
    return net


def _data():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(STEPS, 20, GLOBAL_B, 12, generator=g) < 0.3).double()
    y = torch.randint(0, 3, (STEPS, GLOBAL_B), generator=g)
    return x, y


def _loss(net, x, y):
    logits = net(x).max(0).values                  # [B, 3]: max over time of the readout membrane
    return nn.functional.cross_entropy(logits, y)  # mean over the (local) batch


def _train(net, xs, ys):
    """Adam steps; returns per-step gradients (before the step) and final weights."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    grads = []
    for x, y in zip(xs, ys):
        opt.zero_grad()
        _loss(net, x, y).backward()
        grads.append([p.grad.detach().clone() for p in net.parameters()])
        opt.step()
    return grads, [p.detach().clone() for p in net.parameters()]


def _worker(rank, port, out_dir):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        net = nn.parallel.DistributedDataParallel(_model())
        x, y = _data()
        per = GLOBAL_B // WORLD
        xs = x[:, :, rank * per:(rank + 1) * per]
        ys = y[:, rank * per:(rank + 1) * per]
        grads, weights = _train(net, xs, ys)
        torch.save({"grads": grads, "weights": weights}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_ddp_two_processes_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    x, y = _data()
    grads_ref, weights_ref = _train(_model(), x, y)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for step in range(STEPS):
            for a, b in zip(got["grads"][step], grads_ref[step]):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        for a, b in zip(got["weights"], weights_ref):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the gradient is not trivially zero
    assert all(g.abs().sum() > 0 for g in grads_ref[0][:2])
