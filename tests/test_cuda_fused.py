"""The fused Linear+LIF ops on an NVIDIA GPU against the CPU kernels (same schemas).

Forward: spikes, membrane, the spike CSR and the active-set CSR with ``U - θ``
bit for bit (the scans round every operation as the CPU does). Backward:
``h`` bit for bit, ``∂L/∂W``, ``∂L/∂b``, ``∂L/∂X`` to rounding (cuBLAS sums in
another order). Also: the layers really take the fused path on CUDA, and the
explicit event-driven forward agrees with the GEMM one.
"""
import pytest
import torch

from snntorch_sparse import SparseLinearLeaky, sparse_fast_sigmoid
from snntorch_sparse.functional import ACTIVE_INDEX_ATTR
from snntorch_sparse.ops import compiled, fused

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]


def _layer(T, B, N, Ni, dtype, seed, density=0.1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T * B, Ni, generator=g) < density).to(dtype)
    w = torch.randn(N, Ni, generator=g, dtype=dtype) * 0.6
    b = torch.randn(N, generator=g, dtype=dtype) * 0.1
    beta = torch.rand(N, generator=g, dtype=dtype) * 0.3 + 0.65
    thr = torch.rand(N, generator=g, dtype=dtype) * 0.5 + 0.75
    win = torch.rand(N, generator=g, dtype=dtype) * 0.4 + 0.1
    return x, w, b, beta, thr, win


def relative_error(got, want):
    """Normwise relative error ‖got - want‖ / ‖want‖ (cuBLAS sums in another order: rounding only)."""
    return float((got - want).double().norm() / want.double().norm().clamp_min(1e-300))


def test_the_fused_kernels_are_registered_for_cuda():
    assert compiled.available(strict=True)
    assert fused.supported(torch.zeros(1, device="cuda"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", [(30, 6, 45, 33), (200, 64, 200, 700), (1, 1, 1, 1)])
def test_forward_matches_the_cpu_kernel_bitwise(shape, mode, dtype):
    T, B, N, Ni = shape
    x, w, b, beta, thr, win = _layer(T, B, N, Ni, dtype, seed=sum(shape) + mode)
    current = torch.addmm(b, x, w.t()).view(T, B, N)
    outs = {}
    for dev in ("cpu", "cuda"):
        cur, be, th, wn = (t.to(dev) for t in (current, beta, thr, win))
        spk = torch.empty(T, B, N, dtype=dtype, device=dev)
        mem = torch.empty(T, B, N, dtype=dtype, device=dev)
        sets = fused.lif_fused_forward(cur, None, None, None, be, th, mode, wn, spk, mem, True, True)
        outs[dev] = [spk, mem, *sets]
    for a, c in zip(outs["cpu"], outs["cuda"]):
        assert torch.equal(a, c.cpu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_to_csr_matches_the_cpu_kernel(dtype):
    x = torch.randn(3000, 700, dtype=dtype)
    x[torch.rand(x.shape) < 0.97] = 0
    for a, c in zip(fused.dense_to_csr(x), fused.dense_to_csr(x.cuda())):
        assert torch.equal(a, c.cpu())


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("up_density", [0.05, 0.3])  # ∂L/∂X by per-entry dots / by the chunk's h W GEMM
@pytest.mark.parametrize("shape", [(30, 6, 45, 33), (120, 64, 200, 700)])
def test_backward_matches_the_cpu_kernel(shape, mode, dtype, compact, up_density):
    T, B, N, Ni = shape
    x, w, b, beta, thr, win = _layer(T, B, N, Ni, dtype, seed=sum(shape) * 3 + mode)
    current = torch.addmm(b, x, w.t()).view(T, B, N)
    spk = torch.empty(T, B, N, dtype=dtype)
    _, _, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, mode, win, spk, None,
                                                         False, True)
    g = torch.Generator().manual_seed(7)
    act_sg = 1 / (1 + 25 * a_shift.abs()) ** 2
    d_spk = torch.randn(a_col.numel(), generator=g, dtype=dtype) if compact else \
        torch.randn(T, B, N, generator=g, dtype=dtype)
    d_mem = None if compact else torch.randn(T, B, N, generator=g, dtype=dtype)
    x_csr = fused.dense_to_csr(x)
    up_rp, up_col = fused.dense_to_csr((torch.rand(T * B, Ni, generator=g) < up_density).to(dtype))[:2]
    res = {}
    for dev in ("cpu", "cuda"):
        mv = (lambda t: None if t is None else t.to(dev))
        h = torch.empty(T, B, N, dtype=dtype, device=dev)
        dx = torch.empty(up_col.numel(), dtype=dtype, device=dev) if compact else \
            torch.zeros(T, B, Ni, dtype=dtype, device=dev)
        dw, db = fused.lif_fused_backward((mv(a_rp), mv(a_col)), mv(act_sg), mv(d_spk), mv(d_mem), mv(beta), mv(spk),
                                          mode, (mv(x_csr[0]), mv(x_csr[1]), None), mv(w), (mv(up_rp), mv(up_col)),
                                          dx, h, T, B, Ni, need_dw=True, need_db=True, d_spk_compact=compact,
                                          dx_compact=compact)
        res[dev] = (h, dw, db, dx)
    assert torch.equal(res["cpu"][0], res["cuda"][0].cpu())
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, c in zip(res["cpu"][1:], res["cuda"][1:]):
        assert relative_error(c.cpu(), a) < tol


@pytest.mark.parametrize("event_forward", [None, True])
def test_layer_takes_the_fused_path_and_matches_cpu(event_forward):
    torch.manual_seed(0)
    layer = SparseLinearLeaky(120, 64, beta=0.9, spike_grad=sparse_fast_sigmoid(slope=25, bth=0.4),
                              event_forward=event_forward).double()
    x = (torch.rand(40, 8, 120) < 0.1).double()
    outs = {}
    for dev in ("cpu", "cuda"):
        layer.to(dev)
        layer.zero_grad()
        xi = x.to(dev).detach().clone().requires_grad_()
        spk = layer(xi)
        sets = getattr(spk, ACTIVE_INDEX_ATTR)
        assert sets._active_csr is not None  # the fused op's CSR sets, not the generic path's flat indices
        (spk * torch.linspace(-1, 1, spk.numel(), dtype=spk.dtype, device=dev).view_as(spk)).sum().backward()
        # copies: moving the layer to the next device moves its .grad tensors in place
        outs[dev] = tuple(t.detach().cpu().clone() for t in (spk, layer.fc.weight.grad, layer.fc.bias.grad, xi.grad))
    assert torch.equal(outs["cpu"][0], outs["cuda"][0])
    for a, c in zip(outs["cpu"][1:], outs["cuda"][1:]):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_forward_without_current_gemms_time_chunks_with_the_membrane_carried(mode):
    """No current given: the op densifies the input's events per time chunk (8 MiB
    of buffers together: here 15 chunks) and runs cuBLAS on each; same result as the whole GEMM."""
    T, B, N, Ni = 300, 64, 50, 700
    x, w, b, beta, thr, win = _layer(T, B, N, Ni, torch.float64, seed=mode)
    x, w, b, beta, thr, win = (t.cuda() for t in (x, w, b, beta, thr, win))
    csr = fused.dense_to_csr(x)
    outs = []
    for form in ("current", "events", "dense"):  # the dense input's own rows feed the GEMMs too
        current = torch.addmm(b, x, w.t()).view(T, B, N) if form == "current" else None
        spk = torch.empty(T, B, N, dtype=torch.float64, device="cuda")
        mem = torch.empty_like(spk)
        sets = fused.lif_fused_forward(current, None if form == "dense" else (csr[0], csr[1], None), w, b, beta, thr,
                                       mode, win, spk, mem, True, True, x_dense=x if form == "dense" else None)
        outs.append((spk, mem, *sets))
    for got in outs[1:]:
        torch.testing.assert_close(got[1], outs[0][1], rtol=1e-12, atol=1e-12)
        assert torch.equal(got[0], outs[0][0])
        for a, c in zip(outs[0][2:4], got[2:4]):  # the spike CSR
            assert torch.equal(a, c)
    for a, c in zip(outs[1], outs[2]):  # densified events and the dense rows: the same GEMMs
        assert torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("given_current", [True, False])
def test_compact_spikes_and_list_hints_give_the_cpu_kernels_sets(given_current, dtype):
    """spk_out=None (the layers' compact spikes): U - θ lives in one chunk's
    buffer at a time; the lists sized from any hint -- none, too small (a second
    pass), exact, generous -- hold the CPU kernel's sets bit for bit (with a
    given current; from the op's own GEMMs, the same sets up to threshold ties)."""
    T, B, N, Ni = 200, 64, 200, 700  # several chunks of the default 8 MiB
    x, w, b, beta, thr, win = _layer(T, B, N, Ni, dtype, seed=11)
    current = torch.addmm(b, x, w.t()).view(T, B, N)
    spk = torch.empty(T, B, N, dtype=dtype)
    ref = fused.lif_fused_forward(current, None, None, None, beta, thr, 0, win, spk, None, True, True)
    n_act, n_spk = ref[3].numel(), ref[1].numel()
    csr = fused.dense_to_csr(x.cuda())
    first = None
    for capacity in (None, (0, 0), (n_act, n_spk), (2 * n_act, 2 * n_spk)):
        args = (current.cuda(), None, None, None) if given_current else (None, (csr[0], csr[1], None), w.cuda(),
                                                                        b.cuda())
        got = fused.lif_fused_forward(*args, beta.cuda(), thr.cuda(), 0, win.cuda(), None, None, True, True,
                                      shape=(T, B), capacity=capacity)
        if given_current:
            for a, c in zip(ref, got):
                assert torch.equal(a, c.cpu()), capacity
        else:
            assert abs(got[3].numel() - n_act) <= 1e-4 * n_act and abs(got[1].numel() - n_spk) <= 1e-4 * n_spk
            first = first or got
            for a, c in zip(first, got):  # the hint changes nothing
                assert torch.equal(a, c), capacity


@pytest.mark.parametrize("mode", [0, 1])
def test_backward_without_h_out_walks_time_chunks_with_the_carry(mode):
    """No h_out: h lives one time chunk at a time, the adjoint carried from the
    later chunk; ∂L/∂W, ∂L/∂b, ∂L/∂X equal those of the CPU kernel."""
    T, B, N, Ni = 300, 64, 200, 700
    dtype = torch.float64
    x, w, b, beta, thr, win = _layer(T, B, N, Ni, dtype, seed=5 + mode)
    current = torch.addmm(b, x, w.t()).view(T, B, N)
    spk = torch.empty(T, B, N, dtype=dtype)
    _, _, a_rp, a_col, a_shift = fused.lif_fused_forward(current, None, None, None, beta, thr, mode, win, spk, None,
                                                         False, True)
    g = torch.Generator().manual_seed(3)
    act_sg = 1 / (1 + 25 * a_shift.abs()) ** 2
    d_spk = torch.randn(a_col.numel(), generator=g, dtype=dtype)
    x_csr = fused.dense_to_csr(x)
    up_rp, up_col = fused.dense_to_csr((torch.rand(T * B, Ni, generator=g) < 0.1).to(dtype))[:2]
    res = {}
    for dev in ("cpu", "cuda"):
        mv = (lambda t: None if t is None else t.to(dev))
        dx = torch.empty(up_col.numel(), dtype=dtype, device=dev)
        dw, db = fused.lif_fused_backward((mv(a_rp), mv(a_col)), mv(act_sg), mv(d_spk), None, mv(beta), mv(spk),
                                          mode, (mv(x_csr[0]), mv(x_csr[1]), None), mv(w), (mv(up_rp), mv(up_col)),
                                          dx, None, T, B, Ni, need_dw=True, need_db=True, d_spk_compact=True,
                                          dx_compact=True)
        res[dev] = (dw, db, dx)
    for a, c in zip(res["cpu"], res["cuda"]):
        assert relative_error(c.cpu(), a) < 1e-12


def test_a_one_mib_chunk_budget_gives_the_same_training_step(tmp_path):
    """SNNTORCH_SPARSE_CUDA_CHUNK_MIB=1 (many one-step chunks) in a fresh process:
    the layers' spikes and gradients equal the default budget's."""
    import subprocess
    import sys
    script = tmp_path / "step.py"
    script.write_text(
        "import sys, torch\n"
        "from snntorch_sparse import SparseLinearLeaky, sparse_fast_sigmoid\n"
        "torch.manual_seed(0)\n"
        "net = torch.nn.Sequential(SparseLinearLeaky(300, 256, beta=0.9), SparseLinearLeaky(256, 10, beta=0.9)).double().cuda()\n"
        "x = (torch.rand(100, 64, 300) < 0.05).double().cuda()\n"
        "out = net(x)\n"
        "(out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device='cuda').view_as(out)).sum().backward()\n"
        "torch.save([out.detach().cpu()] + [p.grad.cpu() for p in net.parameters()], sys.argv[1])\n")
    import os
    outs = []
    for mib in ("8", "1"):
        path = tmp_path / f"out{mib}.pt"
        env = {**os.environ, "SNNTORCH_SPARSE_CUDA_CHUNK_MIB": mib}
        subprocess.run([sys.executable, str(script), str(path)], env=env, check=True, timeout=600)
        outs.append(torch.load(path))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, c in zip(outs[0][1:], outs[1][1:]):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-12)


def test_a_dense_first_layer_input_is_saved_as_itself_not_as_events():
    """On CUDA a linear layer fed a dense tensor builds no event list: the GEMMs read the
    input's rows (forward and ∂L/∂W), and what the layer saves for backward holds no
    int32 column list of the input; gradients equal the CPU's."""
    torch.manual_seed(0)
    layer = SparseLinearLeaky(300, 64, beta=0.9).double().cuda()
    x = (torch.rand(50, 16, 300, device="cuda") < 0.05).double()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        spk = layer(x)
    assert any(t.data_ptr() == x.data_ptr() for t in saved)  # the input itself
    assert not any(t.dtype == torch.int32 and t.numel() == int((x != 0).sum()) for t in saved)
    spk.sum().backward()
    g_cuda = layer.fc.weight.grad.cpu().clone()
    layer.cpu().zero_grad()
    layer(x.cpu()).sum().backward()
    torch.testing.assert_close(g_cuda, layer.fc.weight.grad, rtol=1e-10, atol=1e-10)


def test_a_training_step_synchronises_once_per_layer():
    """torch's sync debug mode counts what makes the host wait in one training step of a
    sparsified snnTorch model (the package's defaults): one read of the totals per fused
    layer, plus the first layer's NaN/inf check of its dense input."""
    import warnings

    import snntorch as snn

    import snntorch_sparse as ss
    torch.manual_seed(0)
    net = ss.sparsify(torch.nn.Sequential(
        torch.nn.Linear(300, 128), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(128, 128), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(128, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True))).cuda()
    x = (torch.rand(100, 32, 300, device="cuda") < 0.05).float()
    labels = torch.randint(0, 10, (32,), device="cuda")

    def step():
        spk, mem = net(x)
        torch.nn.functional.cross_entropy(mem.sum(0), labels).backward()

    step()
    step()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 3 + 1, [str(w.message) for w in syncs]


def test_a_nan_in_a_dense_input_is_named_on_cuda():
    """The dense-input path builds no event list; its NaN/inf check still names the input."""
    layer = SparseLinearLeaky(50, 20, beta=0.9).cuda()
    x = (torch.rand(10, 4, 50, device="cuda") < 0.2).float()
    x[3, 1, 7] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        layer(x)
