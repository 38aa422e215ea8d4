"""BlocTrain data-parallel: 2 CPU processes (gloo) end with the weights of one process on the global batch."""
import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from snntorch_sparse import SparseLinearLeaky, bloc
from test_reliability_distributed import _free_port

WORLD, GLOBAL_B = 2, 8


def _net_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(SparseLinearLeaky(12, 16, beta=0.875, bth=0.4),
                          SparseLinearLeaky(16, 16, beta=0.875, bth=0.4),
                          SparseLinearLeaky(16, 4, beta=0.875, readout=True)).double()
    with torch.no_grad():
        for m in model[:2]:
            m.fc.weight.mul_(3)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(15, GLOBAL_B, 12, generator=g) < 0.3).double()
    y = torch.arange(GLOBAL_B) % 4
    return bloc.split(model, [1, 2], 4, sample=x), x, y


def _fit(net, x, y, xv, yv, batch):
    tr = bloc.BlocTrainer(net, epochs=2, hcd_epochs=1, easy_threshold=1.0, batch_size=batch, progress=False,
                          optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tr.fit((x, y), (xv, yv))


def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        net, x, y = _net_and_data()
        per = GLOBAL_B // WORLD
        shard = slice(rank * per, (rank + 1) * per)
        # the shard holds every class once: all processes keep the same (full) hard sets
        _fit(net, x[:, shard], y[shard], x, y, batch=per)
        torch.save(net.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_bloctrain_two_processes_equal_one(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    net, x, y = _net_and_data()
    # one process, whole global batch per step: each worker's step averages the
    # gradients of its shard (a whole shard per batch) with the other's
    hist = _fit(net, x, y, x, y, batch=GLOBAL_B)
    ref = net.state_dict()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for k, v in ref.items():
            torch.testing.assert_close(got[k], v, rtol=1e-10, atol=1e-12, msg=k)
    assert len(hist) >= 2
