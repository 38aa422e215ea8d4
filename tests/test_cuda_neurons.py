"""The RLeaky / RSynaptic / Alpha backward ops on an NVIDIA GPU (csrc/cuda/neurons_launch.cu).

Each op against its CPU kernel (same schema): the row / column bodies are shared and built
without FMA contraction, so ``a``, ``g`` (RLeaky, RSynaptic also ``c``) and ``u_E, u_H``
(Alpha) are bit for bit; RLeaky's ``dV``, ``Σa`` and ``dW_in`` are summed in another order on
the GPU (to rounding). Then whole layers on CUDA against snnTorch on CUDA: the gradients of
weights, recurrent weights, biases, learnable α/β/θ and inputs, with the CUDA kernel really
taken (not the PyTorch loop). Skipped without a GPU; ``benchmarks/run_gpu.sh`` runs it.
"""
import pytest
import torch

import snntorch_sparse.alpha as al
import snntorch_sparse.recurrent as rec
import snntorch_sparse.rsynaptic as rs
from snntorch_sparse.ops import compiled

from helpers import rel_err

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")]

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
OPS = ("rleaky_backward", "rsynaptic_backward", "alpha_backward")


@pytest.fixture(autouse=True, scope="module")
def _library():
    """Load the compiled library (its ops are registered on load); with a GPU it must build."""
    assert compiled.available(strict=True)


def _cuda(x):
    return None if x is None else x.cuda()


def test_the_neuron_kernels_are_registered_for_cuda():
    assert compiled.available(strict=True)
    like = torch.zeros(1, device="cuda")
    for op in OPS:
        assert rec._has_cuda_kernel(op), op
    assert rec._compiled_ok("compiled", like) and rs._kernel_ok("compiled", like) and al._kernel_ok("compiled", like)
    assert not rec._compiled_ok("reference", like)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("shape", [(7, 3, 13, 9), (40, 300, 64, 50)])
def test_rleaky_backward_matches_the_cpu_op(shape, mode, all_to_all, dtype):
    from snntorch_sparse.ops.fused import flat_to_csr
    T, R, N, n_in = shape
    g = torch.Generator().manual_seed(sum(shape) + mode + 7 * all_to_all)
    compact = mode == 2
    act_idx = (torch.rand(T, R, N, generator=g) < 0.2).view(-1).nonzero().squeeze(1)
    rowptr, col = flat_to_csr(act_idx, T * R, N)
    sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk = torch.randn(T, R, N, generator=g, dtype=dtype)
    ds = d_spk.view(-1)[act_idx].contiguous() if compact else d_spk
    d_mem = torch.randn(T, R, N, generator=g, dtype=dtype)
    beta = torch.rand(N, generator=g, dtype=dtype)
    wt = torch.randn(N, N, generator=g, dtype=dtype) / N ** 0.5 if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk_rowptr, spk_col = flat_to_csr((torch.rand(T, R, N, generator=g) < 0.2).view(-1).nonzero().squeeze(1),
                                      T * R, N)
    keep0 = (torch.rand(R, N, generator=g) < 0.7).to(dtype) if mode == 1 else None
    x_rowptr, x_col = flat_to_csr((torch.rand(T, R, n_in, generator=g) < 0.1).view(-1).nonzero().squeeze(1),
                                  T * R, n_in)
    x_val = torch.randn(x_col.numel(), generator=g, dtype=dtype)
    args = (rowptr, col, sg, ds, d_mem, beta, wt, v, spk_rowptr, spk_col, keep0)
    kw = dict(d_spk_compact=compact, need_a=True, need_g=True, need_dv=all_to_all, need_db=True, n_in=n_in)
    op = torch.ops.snntorch_sparse.rleaky_backward
    cpu = op(*args, mode, T, R, N, x_rowptr=x_rowptr, x_col=x_col, x_val=x_val, **kw)
    gpu = op(*map(_cuda, args), mode, T, R, N, x_rowptr=x_rowptr.cuda(), x_col=x_col.cuda(), x_val=x_val.cuda(),
             **kw)
    for i in (0, 1, 4):  # a, g, a[0]: the same arithmetic in the same order
        assert gpu[i].is_cuda and torch.equal(cpu[i], gpu[i].cpu()), i
    for i in ((2, 3, 5) if all_to_all else (3, 5)):  # dV, Σa, dW_in: other summation orders
        assert rel_err(gpu[i].cpu(), cpu[i]) < TOL[dtype], i
    # without the optional outputs: empty where not asked for
    lean = op(*map(_cuda, args), mode, T, R, N, d_spk_compact=compact, need_a=False, need_g=False)
    assert lean[0].numel() == 0 and lean[1].numel() == 0 and torch.equal(lean[4].cpu(), cpu[4])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("shape", [(7, 3, 11), (40, 300, 64)])
def test_rsynaptic_backward_matches_the_cpu_op(shape, mode, all_to_all, dtype):
    T, R, N = shape
    g = torch.Generator().manual_seed(sum(shape) + mode + 7 * all_to_all)
    act_idx = (torch.rand(T, R, N, generator=g) < 0.2).view(-1).nonzero().squeeze(1)
    rows = act_idx // N
    rowptr = torch.zeros(T * R + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(rows, minlength=T * R).cumsum(0)
    col = act_idx - rows * N
    sg = torch.rand(act_idx.numel(), generator=g, dtype=dtype)
    d_spk, d_syn, d_mem = (torch.randn(T, R, N, generator=g, dtype=dtype) for _ in range(3))
    alpha, beta = torch.rand(N, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    wt = torch.randn(N, N, generator=g, dtype=dtype) / N ** 0.5 if all_to_all else None
    v = None if all_to_all else torch.randn(N, generator=g, dtype=dtype)
    spk = (torch.rand(T, R, N, generator=g) < 0.2) if mode == 1 else None
    keep0 = (torch.rand(R, N, generator=g) < 0.7).to(dtype) if mode == 1 else None
    args = (rowptr, col, sg, d_spk, d_syn, d_mem, alpha, beta, wt, v, spk, keep0)
    op = torch.ops.snntorch_sparse.rsynaptic_backward
    cpu = op(*args, mode, T, R, N, True)
    gpu = op(*map(_cuda, args), mode, T, R, N, True)
    for c, d in zip(cpu, gpu):
        assert d.is_cuda and torch.equal(c, d.cpu())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("shape", [(9, 4, 7), (60, 256, 200)])
def test_alpha_backward_matches_the_cpu_op(shape, mode, dtype):
    T, R, N = shape
    g = torch.Generator().manual_seed(sum(shape) + mode)
    gu = torch.randn(T, R, N, generator=g, dtype=dtype) * (torch.rand(T, R, N, generator=g) < 0.3)
    d_e, d_h = (torch.randn(T, R, N, generator=g, dtype=dtype) for _ in range(2))
    a, b, ta = (torch.rand(N, generator=g, dtype=dtype) for _ in range(3))
    spk = torch.rand(T, R, N, generator=g) < 0.3
    r0 = (torch.rand(R, N, generator=g) < 0.5).to(dtype)
    op = torch.ops.snntorch_sparse.alpha_backward
    for extra in ((d_e, d_h, r0), (None, None, None)):
        args = (gu, extra[0], extra[1], a, b, ta, spk, extra[2])
        cpu = op(*args, mode, T, R, N)
        gpu = op(*map(_cuda, args), mode, T, R, N)
        for c, d in zip(cpu, gpu):
            assert d.is_cuda and torch.equal(c, d.cpu())


def test_the_cuda_ops_check_their_arguments():
    z = torch.zeros(4, dtype=torch.float64, device="cuda")
    rowptr = torch.zeros(3, dtype=torch.long, device="cuda")
    e32 = torch.zeros(0, dtype=torch.int32, device="cuda")
    e64 = torch.zeros(0, dtype=torch.long, device="cuda")
    rl = torch.ops.snntorch_sparse.rleaky_backward
    with pytest.raises(RuntimeError, match="rleaky_backward: give exactly one of wt"):
        rl(rowptr, e32, z[:0], None, None, z[:2], None, None, None, None, None, 0, 1, 2, 2)
    with pytest.raises(RuntimeError, match="rleaky_backward: act_rowptr must be int64 and act_col int32"):
        rl(rowptr, e64, z[:0], None, None, z[:2], None, z[:2], None, None, None, 0, 1, 2, 2)
    with pytest.raises(RuntimeError, match="rleaky_backward: reset to zero needs the spikes"):
        rl(rowptr, e32, z[:0], None, None, z[:2], None, z[:2], None, None, None, 1, 1, 2, 2)
    with pytest.raises(RuntimeError, match="rleaky_backward: d_mem has"):
        rl(rowptr, e32, z[:0], None, z[:3], z[:2], None, z[:2], None, None, None, 0, 1, 2, 2)
    bad = torch.tensor([0, 1, 1], device="cuda")
    with pytest.raises(RuntimeError, match="act_col out of range"):
        rl(bad, torch.tensor([5], dtype=torch.int32, device="cuda"), z[:1], None, None, z[:2], None, z[:2], None,
           None, None, 0, 1, 2, 2)
    with pytest.raises(RuntimeError, match="rleaky_backward: beta is on cpu"):
        rl(rowptr, e32, z[:0], None, None, z[:2].cpu(), None, z[:2], None, None, None, 0, 1, 2, 2)
    rsy = torch.ops.snntorch_sparse.rsynaptic_backward
    with pytest.raises(RuntimeError, match="rsynaptic_backward: alpha and beta"):
        rsy(rowptr, e64, z[:0], None, None, None, z[:3], z[:2], None, z[:2], None, None, 0, 1, 2, 2, True)
    with pytest.raises(RuntimeError, match="rsynaptic_backward: reset to zero needs the spikes"):
        rsy(rowptr, e64, z[:0], None, None, None, z[:2], z[:2], None, z[:2], None, None, 1, 1, 2, 2, True)
    alp = torch.ops.snntorch_sparse.alpha_backward
    spk = torch.zeros(4, dtype=torch.bool, device="cuda")
    with pytest.raises(RuntimeError, match="alpha_backward: gu must have T\\*R\\*N entries"):
        alp(z[:3], None, None, z[:2], z[:2], z[:2], spk, None, 0, 1, 2, 2)
    with pytest.raises(RuntimeError, match="alpha_backward: spk must be a bool tensor"):
        alp(z, None, None, z[:2], z[:2], z[:2], z, None, 0, 1, 2, 2)


# ------------------------------------------------------------ layers against snnTorch on CUDA

def _kernel_taken(monkeypatch, module):
    """Record calls of the module's PyTorch reference loop (must stay empty: the CUDA kernel ran)."""
    calls = []
    real = module._backward_loop
    monkeypatch.setattr(module, "_backward_loop", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(module, "_KERNEL_MAX_FRACTION", 2.0, raising=False)
    return calls


def _to_cuda(*mods):
    return [m.cuda() for m in mods]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_linear_rleaky_gradients_match_snntorch_on_cuda(monkeypatch, reset, all_to_all, dtype):
    import test_recurrent as tr
    calls = _kernel_taken(monkeypatch, rec)
    fc, dense, sparse = _to_cuda(*tr._make(reset, all_to_all, True, dtype, backend="compiled"))
    if not all_to_all:
        dense.recurrent.V = dense.V
    T, B = 13, 3
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype).cuda()
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    sd, md = tr._run_dense(fc, dense, xd)
    ss, ms = sparse(xs)
    assert torch.equal(sd, ss)
    w = torch.randn(T, B, 9, generator=g, dtype=dtype).cuda()
    ((sd * w).sum() + 0.5 * (md * w).sum()).backward()
    ((ss * w).sum() + 0.5 * (ms * w).sum()).backward()
    assert not calls  # the CUDA kernel, not the PyTorch loop
    for a, b in zip(tr._params(sparse.fc, sparse, True) + [xs], tr._params(fc, dense, False) + [xd]):
        assert a.grad is not None and a.grad.is_cuda
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("all_to_all", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_linear_rsynaptic_gradients_match_snntorch_on_cuda(monkeypatch, reset, all_to_all, dtype):
    import test_rsynaptic as trs
    calls = _kernel_taken(monkeypatch, rs)
    fc, dense, sparse = _to_cuda(*trs._make(reset, all_to_all, True, dtype, backend="compiled"))
    if not all_to_all:
        dense.recurrent.V = dense.V
    T, B = 13, 3
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype).cuda()
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = trs._run_dense(fc, dense, xd)
    out_s = sparse(xs)
    assert torch.equal(out_d[0], out_s[0])
    w = torch.randn(3, T, B, 9, generator=g, dtype=dtype).cuda()
    sum(((o * w[i]).sum() * (1.0, 0.3, 0.5)[i] for i, o in enumerate(out_d))).backward()
    sum(((o * w[i]).sum() * (1.0, 0.3, 0.5)[i] for i, o in enumerate(out_s))).backward()
    assert not calls
    for a, b in zip(trs._params(sparse.fc, sparse) + [xs], trs._params(fc, dense) + [xd]):
        assert a.grad is not None and a.grad.is_cuda
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_linear_alpha_gradients_match_snntorch_on_cuda(monkeypatch, reset, dtype):
    import test_alpha as ta
    calls = _kernel_taken(monkeypatch, al)
    fc, dense, sparse = _to_cuda(*ta._make(reset, True, dtype, backend="compiled"))
    T, B = 17, 3
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(T, B, 12, generator=g) < 0.4).to(dtype).cuda()
    xd, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_d = ta._run_dense(fc, dense, xd)
    out_s = sparse(xs)
    assert torch.equal(out_d[0], out_s[0])
    w = torch.randn(4, T, B, 9, generator=g, dtype=dtype).cuda()
    sum((o * w[i]).sum() for i, o in enumerate(out_d)).backward()
    sum((o * w[i]).sum() for i, o in enumerate(out_s)).backward()
    assert not calls
    for a, b in zip(ta._params(sparse.fc, sparse) + [xs], ta._params(fc, dense) + [xd]):
        assert a.grad is not None and a.grad.is_cuda
        assert rel_err(a.grad, b.grad.reshape(a.shape).to(a.dtype)) < TOL[dtype], a.shape
