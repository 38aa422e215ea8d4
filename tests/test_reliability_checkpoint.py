"""Checkpoints: sparse <-> dense state_dicts, and resuming training identically."""
import io

import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from snntorch_sparse import desparsify, sparsify
from snntorch_sparse.checkpoint import (dense_key_map, to_dense_optimizer_state, to_dense_state_dict,
                                        to_sparse_optimizer_state, to_sparse_state_dict)
from snntorch_sparse.surrogate import sparse_fast_sigmoid


def _dense_net(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    sg = sparse_fast_sigmoid(slope=25, bth=0.4)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg),
        snn.Leaky(beta=0.75, init_hidden=True, spike_grad=sg, learn_beta=True),
        nn.Linear(16, 10), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg, learn_threshold=True),
        nn.Linear(10, 4), snn.Leaky(beta=0.875, init_hidden=True, spike_grad=sg, output=True,
                                    reset_mechanism="zero"),
    ).to(dtype)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3)
    return net


def _run_dense(net, x):
    utils.reset(net)
    spk, mem = [], []
    for t in range(x.shape[0]):
        s, m = net(x[t])
        spk.append(s)
        mem.append(m)
    return torch.stack(spk), torch.stack(mem)


def _x(seed=1, T=15, B=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 3, 4, generator=g) < 0.35).double()


def test_state_dict_maps_to_desparsify_layout():
    sparse = sparsify(_dense_net())
    sd = to_dense_state_dict(sparse)
    ref = desparsify(sparse).state_dict()
    assert list(sorted(sd)) == list(sorted(ref))
    for k in ref:
        assert torch.equal(sd[k].to(ref[k].dtype), ref[k]), k
    mapping, extras = dense_key_map(sparse)
    assert mapping["1.fc.weight"] == "1.weight" and mapping["1.beta"] == "2.beta"
    assert "2.reset_mechanism_val" in extras


def test_sparse_checkpoint_loads_into_dense_and_back():
    dense_src = _dense_net(seed=0)
    sparse = sparsify(dense_src)
    buf = io.BytesIO()
    torch.save(sparse.state_dict(), buf)
    buf.seek(0)
    ckpt = torch.load(buf)

    dense = _dense_net(seed=123)  # different weights: everything must come from the checkpoint
    dense.load_state_dict(to_dense_state_dict(sparse, ckpt), strict=True)
    x = _x()
    sd, md = _run_dense(dense, x)
    ss, ms = sparse(x)
    assert torch.equal(sd, ss)
    torch.testing.assert_close(ms, md, rtol=1e-13, atol=1e-13)

    sparse2 = sparsify(_dense_net(seed=7))
    sparse2.load_state_dict(to_sparse_state_dict(sparse2, dense.state_dict()), strict=True)
    for (k, a), b in zip(sparse.state_dict().items(), sparse2.state_dict().values()):
        assert torch.equal(a, b), k


def test_dense_checkpoint_with_wrong_reset_is_refused():
    sparse = sparsify(_dense_net())
    sd = to_dense_state_dict(sparse)
    sd["2.reset_mechanism_val"] = torch.tensor(1)
    with pytest.raises(ValueError, match="reset_mechanism_val"):
        to_sparse_state_dict(sparse, sd)
    sd.pop("2.reset_mechanism_val")
    with pytest.raises(KeyError, match="missing"):
        to_sparse_state_dict(sparse, sd)


def _train(model, opt, x, y, steps, sequence):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        if sequence:
            spk, mem = model(x)
        else:
            spk, mem = _run_dense(model, x)
        loss = nn.functional.cross_entropy(mem.max(0).values, y) + 0.01 * spk.sum() / spk.numel()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("resume_as", ["sparse", "dense"])
def test_resume_from_checkpoint_continues_identically(resume_as):
    x, y = _x(seed=3, T=12, B=6), torch.tensor([0, 1, 2, 3, 0, 1])
    sparse = sparsify(_dense_net(seed=0))
    opt = torch.optim.Adam(sparse.parameters(), lr=1e-2)
    _train(sparse, opt, x, y, 3, sequence=True)
    buf = io.BytesIO()
    torch.save({"model": sparse.state_dict(), "optim": opt.state_dict()}, buf)
    expected = _train(sparse, opt, x, y, 3, sequence=True)

    buf.seek(0)
    ckpt = torch.load(buf)
    if resume_as == "sparse":
        model = sparsify(_dense_net(seed=99))
        model.load_state_dict(ckpt["model"])
    else:  # snnTorch's own dense loop, from the sparse checkpoint (same gradients to rounding)
        template = sparsify(_dense_net(seed=99))
        model = desparsify(template)
        model.load_state_dict(to_dense_state_dict(template, ckpt["model"]))
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-2)
    if resume_as == "sparse":
        opt2.load_state_dict(ckpt["optim"])
    else:
        dense_optim = to_dense_optimizer_state(template, ckpt["optim"])
        back = to_sparse_optimizer_state(template, dense_optim)
        assert back["param_groups"] == ckpt["optim"]["param_groups"]
        assert all(torch.equal(back["state"][i]["exp_avg"], ckpt["optim"]["state"][i]["exp_avg"])
                   for i in ckpt["optim"]["state"])
        opt2.load_state_dict(dense_optim)
    got = _train(model, opt2, x, y, 3, sequence=resume_as == "sparse")
    if resume_as == "sparse":
        assert got == expected
    else:
        torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=1e-10, atol=1e-12)


def test_nested_sequential_state_dict_maps_to_desparsify_layout():
    """A nested Sequential keeps its nesting: its fused layers map to Linear + Leaky inside it."""
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.9, init_hidden=True)),
                          nn.Linear(8, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    sparse = sparsify(dense)
    mapping, extras = dense_key_map(sparse)
    assert set(mapping) == set(sparse.state_dict())
    assert set(mapping.values()) | set(extras) == set(desparsify(sparse).state_dict())
    back = desparsify(sparse)
    back.load_state_dict(to_dense_state_dict(sparse))
    for k, v in dense.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
