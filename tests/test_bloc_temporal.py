"""BlocTrain on temporal inputs: time-reading heads and HCDs, their default selection,
the easy threshold from the validation accuracies, the HCD exit threshold, and a
small end-to-end run on a slice of the FSDD spoken digits (issue 22)."""
import warnings

import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from snntorch_sparse import SparseLinearLeaky, sparsify
from snntorch_sparse import bloc
from snntorch_sparse.data.audio import fsdd_root, fsdd_spikes


def _bursty(T=40, B=6, n=12, seed=0):
    """Every channel fires in one burst of 10 steps at a random onset (speech-like)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(T, B, n)
    onset = torch.randint(0, T - 10, (B, n), generator=g)
    for b in range(B):
        for c in range(n):
            x[onset[b, c]:onset[b, c] + 10, b, c] = (torch.rand(10, generator=g) < 0.7).float()
    return x


def _rate_coded(T=40, B=6, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(B, n, generator=g) * 0.5
    return (torch.rand(T, B, n, generator=g) < p).float()


def _model(n_in=12, readout_layer=True, seed=0):
    torch.manual_seed(seed)
    m = [nn.Linear(n_in, 16), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(16, 16),
         snn.Leaky(beta=0.9, init_hidden=True)]
    with torch.no_grad():
        m[0].weight.mul_(3)
    last = SparseLinearLeaky(16, 4, beta=0.9, readout=True) if readout_layer else SparseLinearLeaky(16, 4, beta=0.9)
    return sparsify(nn.Sequential(*m, last))


# ------------------------------------------------------------------ heads: the math, shapes, gradients

@pytest.mark.parametrize("reduce", ["max", "last"])
def test_leaky_readout_matches_its_formula(reduce):
    torch.manual_seed(0)
    head = bloc.LeakyReadout(5, 3, beta=0.8, reduce=reduce).double()
    s = (torch.rand(7, 4, 5, dtype=torch.float64) < 0.4).double()
    W, b = head.layer.weight, head.layer.bias
    u, mems = torch.zeros(4, 3, dtype=torch.float64), []
    for t in range(7):  # U[t] = beta U[t-1] + W S[t] + b
        u = 0.8 * u + s[t] @ W.T + b
        mems.append(u)
    mems = torch.stack(mems)
    want = mems.max(0).values if reduce == "max" else mems[-1]
    assert torch.allclose(head(s), want)


def test_leaky_readout_gradients_and_shapes():
    torch.manual_seed(0)
    head = bloc.LeakyReadout(2 * 3 * 3, 4).double()
    s = (torch.rand(6, 5, 2, 3, 3, dtype=torch.float64) < 0.5).double().requires_grad_(True)
    out = head(s)  # conv-shaped block output [T, B, C, H, W] is flattened
    assert out.shape == (5, 4)
    out.sum().backward()
    assert head.layer.weight.grad is not None and head.layer.weight.grad.abs().sum() > 0
    assert s.grad is not None and s.grad.shape == s.shape and s.grad.abs().sum() > 0
    # the gradient of the max-over-time logits w.r.t. the weights, against autograd on the formula
    ref = bloc.LeakyReadout(18, 4).double()
    ref.load_state_dict(head.state_dict())
    W = ref.layer.weight.detach().clone().requires_grad_(True)
    u, best = torch.zeros(5, 4, dtype=torch.float64), None
    for t in range(6):
        u = 0.9 * u + s[t].detach().flatten(1) @ W.T + ref.layer.bias
        best = u if best is None else torch.maximum(best, u)
    best.sum().backward()
    assert torch.allclose(head.layer.weight.grad, W.grad)


@pytest.mark.parametrize("reduce", ["max", "last"])
def test_leaky_readout_backward_on_packed_spikes_and_graded_input(reduce):
    torch.manual_seed(1)
    head = bloc.LeakyReadout(6, 3, beta=0.85, reduce=reduce).double()
    s = (torch.rand(9, 4, 6, dtype=torch.float64) < 0.3).double().requires_grad_(True)
    g = torch.randn(4, 3, dtype=torch.float64)
    (head(s) * g).sum().backward()  # 0/1 input: kept as packed bits
    W = head.layer.weight.detach().clone().requires_grad_(True)
    b = head.layer.bias.detach().clone().requires_grad_(True)
    x = s.detach().clone().requires_grad_(True)
    u, mems = 0, []
    for t in range(9):
        u = 0.85 * u + x[t] @ W.T + b
        mems.append(u)
    ref = torch.stack(mems).max(0).values if reduce == "max" else mems[-1]
    (ref * g).sum().backward()
    assert torch.allclose(head.layer.weight.grad, W.grad) and torch.allclose(head.layer.bias.grad, b.grad)
    assert torch.allclose(s.grad, x.grad)
    # graded (non-spike) input takes the unpacked path: autograd's numerical check
    xg = torch.rand(5, 2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w, c: bloc.heads._LeakyReadoutFn.apply(v, w, c, 0.85, reduce == "last"),
                                    (xg, W.detach().clone().requires_grad_(True),
                                     b.detach().clone().requires_grad_(True)))


def test_leaky_readout_keeps_one_bit_per_input_entry():
    from snntorch_sparse.memory import saved_tensor_bytes

    head = bloc.LeakyReadout(128, 10)
    s = (torch.rand(100, 64, 128) < 0.1).float().requires_grad_(True)
    with saved_tensor_bytes(head) as c:
        out = head(s)  # the graph lives as long as its output
    assert c.bytes == 100 * 64 * 128 // 8 + 64 * 10 * 1  # packed spikes + arg-max steps (uint8: T <= 256)
    assert out.shape == (64, 10)
    # longer sequences keep their arg-max steps in a wider integer type, and stay exact
    assert bloc.heads._step_dtype(256) == torch.uint8 and bloc.heads._step_dtype(257) == torch.int16
    assert bloc.heads._step_dtype(40000) == torch.int64
    head = bloc.LeakyReadout(3, 2, beta=0.5).double()
    long = torch.zeros(300, 1, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        long[280, 0, 0] = 1.0  # the maximum of class 0 sits at step >= 280 (beyond uint8)
        head.layer.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 0]]))
        head.layer.bias.zero_()
    head(long)[0, 0].backward()  # d max_t U / d x[s] = beta^(280 - s) for s <= 280, 0 after
    want = 0.5 ** (280 - torch.arange(281, dtype=torch.float64))
    assert torch.allclose(long.grad[:281, 0, 0], want) and long.grad[281:, 0, 0].abs().sum() == 0


@pytest.mark.parametrize("reduce", ["max", "last"])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_cross_entropy_matches_the_two_step_form(reduce, masked):
    """LeakyReadout.cross_entropy: the value and all gradients of F.cross_entropy(head(s) + mask, y)."""
    torch.manual_seed(2)
    head = bloc.LeakyReadout(6, 4, beta=0.85, reduce=reduce).double()
    mask = torch.tensor([0.0, -1e9, 0.0, 0.0], dtype=torch.float64) if masked else None
    y = torch.tensor([0, 2, 3, 0, 2])
    for s in ((torch.rand(9, 5, 6, dtype=torch.float64) < 0.3).double(),  # spikes
              torch.rand(9, 5, 2, 3, dtype=torch.float64)):                # graded, conv-shaped
        grads = []
        for fused in (True, False):
            x = s.clone().requires_grad_(True)
            head.zero_grad(set_to_none=True)
            if fused:
                loss = head.cross_entropy(x, y, mask)
            else:
                out = head(x)
                loss = F.cross_entropy(out if mask is None else out + mask, y)
            (3.0 * loss).backward()  # an incoming gradient other than 1 scales every gradient
            grads.append([loss.detach(), head.layer.weight.grad, head.layer.bias.grad, x.grad])
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-12), (a, b)
        assert grads[0][3].abs().sum() > 0 and grads[0][1].abs().sum() > 0
    # inference (no gradient needed): the plain cross-entropy
    with torch.no_grad():
        s = (torch.rand(9, 5, 6, dtype=torch.float64) < 0.3).double()
        assert torch.allclose(head.cross_entropy(s, y, mask),
                              F.cross_entropy(head(s) if mask is None else head(s) + mask, y))


def test_fused_cross_entropy_keeps_no_copy_of_the_input():
    from snntorch_sparse.memory import saved_tensor_bytes

    T, B, n, C = 100, 64, 128, 10
    head = bloc.LeakyReadout(n, C)
    s = (torch.rand(T, B, n) < 0.1).float().requires_grad_(True)
    y = torch.randint(0, C, (B,))
    with saved_tensor_bytes(head) as fused:
        loss = head.cross_entropy(s, y)
    # logit gradient g [B, C] float32, arg-max steps [B, C] uint8, dW [C, n] and db [C] float32
    assert fused.bytes == B * C * 4 + B * C + C * n * 4 + C * 4
    with saved_tensor_bytes(head) as two_step:
        loss2 = F.cross_entropy(head(s), y)
    # packed spikes + arg-max steps, and cross-entropy's log-softmax, int64 targets, total weight
    assert two_step.bytes == T * B * n // 8 + B * C + B * C * 4 + B * 8 + 4
    assert fused.bytes < two_step.bytes / 10
    del loss, loss2
    with pytest.raises(ValueError, match="target must be int64 class indices"):
        head.cross_entropy(s, y.int())
    with pytest.raises(ValueError, match="target must be int64 class indices"):
        head.cross_entropy(s, y[:5])
    with pytest.raises(ValueError, match=r"mask must be None or a tensor \[num_classes\]"):
        head.cross_entropy(s, y, torch.zeros(3))


def test_trainer_takes_the_fused_loss_only_with_its_default_loss():
    """Same training with the default loss (fused head loss) and the explicit cross-entropy; less memory."""
    x, y = _bursty(B=24, seed=3), torch.arange(24) % 4
    nets, mems = [], []
    for loss_fn in (None, lambda out, t: F.cross_entropy(out, t)):
        net = bloc.split(_model(seed=4), [2], 4, sample=x)
        tr = bloc.BlocTrainer(net, loss_fn=loss_fn, epochs=2, hcd_epochs=1, batch_size=8, progress=False)
        mems.append(tr.training_memory(x[:, :8], y[:8]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tr.fit((x, y), (x, y))
        nets.append(net)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    # block 0 ends in 16 neurons read by a LeakyReadout head of 4 classes, batch 8, T = 40
    T, B, n, C = 40, 8, 16, 4
    fused, two_step = B * C * 4 + B * C + C * n * 4 + C * 4, T * B * n // 8 + B * C + B * C * 4 + B * 8 + 4
    assert mems[1]["per_block_saved_bytes"][0] - mems[0]["per_block_saved_bytes"][0] == two_step - fused
    assert mems[0]["end_to_end_saved_bytes"] == mems[1]["end_to_end_saved_bytes"]  # own read-out: TimeMax
    with pytest.raises(TypeError, match="y must be a 1-D integer tensor"):
        tr.training_memory(x[:, :8], y[:8].float())


def test_recurrent_readout_formula_and_gradients():
    torch.manual_seed(0)
    head = bloc.RecurrentReadout(5, 3, hidden=4).double()
    s = (torch.rand(6, 2, 5, dtype=torch.float64) < 0.5).double().requires_grad_(True)
    h, hs = torch.zeros(2, 4, dtype=torch.float64), []
    for t in range(6):  # h[t] = tanh(Wx S[t] + Wh h[t-1] + b); logits = max_t Wo h[t] + bo
        h = torch.tanh(head.inp(s[t]) + head.rec(h))
        hs.append(head.out(h))
    assert torch.allclose(head(s), torch.stack(hs).max(0).values)
    head(s).sum().backward()
    assert all(p.grad is not None for p in head.parameters()) and s.grad.abs().sum() > 0


def test_time_heads_for_own_readouts():
    mem = torch.randn(5, 3, 4)
    assert torch.equal(bloc.TimeMax()(mem), mem.max(0).values)
    assert torch.equal(bloc.TimeLast()(mem), mem[-1])


def test_bad_head_arguments_are_named():
    with pytest.raises(ValueError, match="reduce must be 'max' or 'last'"):
        bloc.LeakyReadout(4, 2, reduce="mean")
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\]"):
        bloc.LeakyReadout(4, 2, beta=1.5)
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        bloc.RecurrentReadout(4, 2, hidden=0)
    with pytest.raises(ValueError, match="in_features = 4"):
        bloc.LeakyReadout(4, 2)(torch.zeros(3, 2, 5))
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        bloc.RecurrentReadout(4, 2)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="bins must be an int >= 2"):
        bloc.temporal_structure(_bursty(), bins=1)


# ------------------------------------------------------------------ default selection on sequence input

def test_temporal_structure_separates_bursts_from_rates_and_latency():
    assert bloc.temporal_structure(_bursty(B=16)) > 3.0
    assert 0.5 < bloc.temporal_structure(_rate_coded(B=16)) < 1.5
    latency = torch.zeros(25, 8, 12)  # one spike per channel: a latency code of a static value
    latency[torch.randint(0, 25, (8, 12)), torch.arange(8)[:, None], torch.arange(12)] = 1
    assert bloc.temporal_structure(latency) == 0.0
    assert bloc.temporal_structure(_bursty()[:6]) == 0.0  # too short to tell
    assert bloc.has_temporal_structure(_bursty(B=16)) and not bloc.has_temporal_structure(_rate_coded(B=16))


def test_split_picks_time_reading_heads_on_temporal_input():
    x = _bursty(B=16)
    net = bloc.split(_model(), [2], 4, sample=x)
    assert net.readout == "leaky-max"
    assert isinstance(net.heads[0], bloc.LeakyReadout) and isinstance(net.hcds[0], bloc.LeakyReadout)
    assert isinstance(net.heads[1], bloc.TimeMax)  # the model's own membrane read-out, max over time
    assert net.heads[0](net.run_block(0, x)).shape == (16, 4)
    assert net.hcds[0](net.run_block(0, x)).shape == (16, 2)
    rate = bloc.split(_model(), [2], 4, sample=_rate_coded(B=16))
    assert rate.readout == "rate" and isinstance(rate.heads[0], bloc.RateHead)
    assert isinstance(rate.heads[1], bloc.TimeMean)  # unchanged behaviour on rate-coded input


def test_split_readout_argument():
    x = _rate_coded(B=8)
    last = bloc.split(_model(), [2], 4, sample=x, readout="leaky-last")
    assert last.heads[0].reduce == "last" and isinstance(last.heads[1], bloc.TimeLast)
    rec = bloc.split(_model(), [2], 4, sample=x, readout="recurrent")
    assert isinstance(rec.heads[0], bloc.RecurrentReadout) and isinstance(rec.hcds[0], bloc.RecurrentReadout)
    spiking = bloc.split(_model(readout_layer=False), [2], 4, sample=x, readout="leaky-max")
    assert isinstance(spiking.heads[1], bloc.TimeMean)  # a spiking class layer is read as a rate
    with pytest.raises(ValueError, match="readout must be 'auto' or one of"):
        bloc.split(_model(), [2], 4, sample=x, readout="attention")
    with pytest.raises(TypeError, match="readout must be a string"):
        bloc.split(_model(), [2], 4, sample=x, readout=None)


# ------------------------------------------------------------------ easy threshold and exit threshold

def test_easy_threshold_from_validation_accuracies():
    net = bloc.split(_model(), [2], 4, sample=_bursty())
    acc = torch.tensor([0.9, 0.8, 0.5, float("nan")])
    auto = bloc.BlocTrainer(net, easy_threshold="auto", progress=False)  # q = 0.5: the median
    assert auto.threshold_for(acc, {0, 1, 2, 3}) == pytest.approx(0.8)
    assert auto.select_hard(acc, {0, 1, 2, 3}) == {2, 3}  # absent class stays hard
    assert auto.threshold_for(acc, {1, 2}) == pytest.approx(0.65)  # quantile over the hard classes only
    low = bloc.BlocTrainer(net, easy_threshold="auto", easy_quantile=0.0, progress=False)
    assert low.select_hard(acc, {0, 1, 2, 3}) == {3}
    high = bloc.BlocTrainer(net, easy_threshold="auto", easy_quantile=1.0, progress=False)
    assert high.select_hard(acc, {0, 1, 2, 3}) == {1, 2, 3}
    fixed = bloc.BlocTrainer(net, easy_threshold=0.95, progress=False)
    assert fixed.threshold_for(acc, {0, 1, 2, 3}) == 0.95 and fixed.select_hard(acc, {0, 1, 2, 3}) == {0, 1, 2, 3}
    assert auto.threshold_for(torch.full((4,), float("nan")), {0, 1}) == 1.0
    for bad in ("median", 1.5, True, [0.9]):
        with pytest.raises(ValueError, match="easy_threshold must be a number in"):
            bloc.BlocTrainer(net, easy_threshold=bad)
    with pytest.raises(ValueError, match="easy_quantile must be a number in"):
        bloc.BlocTrainer(net, easy_threshold="auto", easy_quantile=2)


def test_default_easy_threshold_follows_the_readout():
    temporal = bloc.split(_model(), [2], 4, sample=_bursty(B=16))
    assert bloc.BlocTrainer(temporal, progress=False).easy_threshold == "auto"
    rate = bloc.split(_model(), [2], 4, sample=_rate_coded(B=16))
    assert bloc.BlocTrainer(rate, progress=False).easy_threshold == 0.9  # unchanged for rate heads
    assert bloc.BlocTrainer(temporal, easy_threshold=0.95, progress=False).easy_threshold == 0.95


def test_exit_threshold_moves_the_hcd_decision():
    x = _bursty(B=8)
    net = bloc.split(_model(), [2], 4, sample=x)
    with torch.no_grad():  # p(easy) = sigmoid(1) = 0.73 for every input
        net.hcds[0].layer.weight.zero_()
        net.hcds[0].layer.bias.copy_(torch.tensor([1.0, 0.0]) * (1 - 0.9))  # U[T-1] -> bias / (1 - beta)
    _, ex = bloc.predict(net, x)
    assert ex.tolist() == [0] * 8
    _, ex = bloc.predict(net, x, exit_threshold=0.7)
    assert ex.tolist() == [0] * 8
    _, ex = bloc.predict(net, x, exit_threshold=0.75)
    assert ex.tolist() == [1] * 8
    with pytest.raises(ValueError, match=r"exit_threshold must be a number in \[0, 1\]"):
        bloc.predict(net, x, exit_threshold=2)


# ------------------------------------------------------------------ small run on real spoken digits

@pytest.mark.skipif(fsdd_root() is None, reason="FSDD recordings not found (../shared/data/fsdd)")
def test_bloctrain_fsdd_slice_small():
    torch.manual_seed(0)
    (x, y), (xte, yte) = fsdd_spikes(max_files=700)
    xv, yv, xt, yt = x[:, :100], y[:100], x[:, 100:], y[100:]
    torch.manual_seed(0)
    mods = []
    for i, (a, b) in enumerate([(64, 64), (64, 64), (64, 64), (64, 64)]):
        fc = nn.Linear(a, b)
        with torch.no_grad():
            fc.weight.mul_(5.0 if i == 0 else 2.5)
        mods += [fc, snn.Leaky(beta=0.9, init_hidden=True)]
    model = sparsify(nn.Sequential(*mods, SparseLinearLeaky(64, 10, beta=0.9, readout=True)))
    net = bloc.split(model, [2, 4], 10, sample=xt[:, :32])
    assert net.readout == "leaky-max"  # chosen from the input: speech has temporal structure
    tr = bloc.BlocTrainer(net, epochs=8, hcd_epochs=3, easy_threshold="auto", progress=False,
                          optimizer=lambda p: torch.optim.Adam(p, lr=5e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = tr.fit((xt, yt), (xv, yv))
    h0 = hist[0]
    accs = torch.tensor(h0["per_class_acc"])
    assert h0["easy_threshold"] == pytest.approx(float(torch.quantile(accs[~accs.isnan()].double(), 0.5)), abs=1e-4)
    assert 0 < len(h0["hard_out"]) < 10  # the median rule makes some classes easy, not all
    rep = bloc.report(net, xte, yte)
    assert rep["accuracy_all_blocks"] > 0.3  # 10 classes: chance is 0.1
    assert rep["exit_fraction"][0] > 0.2 and rep["synops_ratio"] > 1.0
    assert abs(sum(rep["exit_fraction"]) - 1) < 1e-6


def test_guide_cut_claim_follows_the_splits_results():
    """The BlocTrain guide's sentence on where to cut is what bloc_fsdd_splits.json measured."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    rows = json.loads((root / "benchmarks" / "results" / "bloc_fsdd_splits.json").read_text())["rows"]
    for key in ("saved_ratio_sparse", "saved_ratio_dense"):
        assert max(rows, key=lambda r: r[key])["boundaries"] == [2, 4], key
    guide = " ".join((root / "docs" / "guide" / "bloctrain.md").read_text().split())
    assert "`[2, 4]`, the cut of issue 22, is the best for both the sparse network and its dense twin" in guide


def test_guide_sweep_claims_follow_the_sweep_results():
    """The BlocTrain guide's reading of bloc_fsdd_sweep.json (how the defaults were chosen) holds for that file."""
    import inspect
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    runs = json.loads((root / "benchmarks" / "results" / "bloc_fsdd_sweep.json").read_text())["runs"]
    mean = lambda v: sum(v) / len(v)  # noqa: E731

    def reps(readout, easy, q, thr="0.5"):
        out = [r["reports"][thr] for r in runs
               if r["readout"] == readout and str(r["easy_threshold"]) == str(easy) and r["easy_quantile"] == q]
        assert out, (readout, easy, q)
        return out

    acc = lambda rs: mean([r["accuracy_early_exit"] for r in rs])  # noqa: E731
    synops = lambda rs: mean([r["synops_ratio"] for r in rs])  # noqa: E731
    default_q = inspect.signature(bloc.BlocTrainer).parameters["easy_quantile"].default
    # the default quantile: the most accurate quantile rule saving >= 1.5x synaptic operations on every seed
    saving = {q: acc(reps("leaky-max", "auto", q)) for q in (0.3, 0.5, 0.7)
              if all(r["synops_ratio"] >= 1.5 for r in reps("leaky-max", "auto", q))}
    assert max(saving, key=saving.get) == default_q == 0.5
    default = reps("leaky-max", "auto", 0.5)
    # the fixed 0.95: few exits (no 1.5x saving), a few tenths of a point more accurate at most
    fixed = reps("leaky-max", 0.95, 0.5)
    assert synops(fixed) < 1.5 and 0 <= acc(fixed) - acc(default) < 0.01
    # the other quantiles: less than that apart in accuracy
    assert all(abs(acc(reps("leaky-max", "auto", q)) - acc(default)) < 0.005 for q in (0.3, 0.7))
    # higher exit thresholds gain at most a few tenths of a point and save less
    for thr in ("0.7", "0.9"):
        hi = reps("leaky-max", "auto", 0.5, thr)
        assert acc(hi) - acc(default) < 0.005 and synops(hi) < synops(default)
    # leaky-last fails, recurrent is less accurate and costs more than running all blocks
    assert acc(reps("leaky-last", "auto", 0.5)) < 0.5 * acc(default)
    assert acc(reps("recurrent", "auto", 0.5)) < acc(default) and synops(reps("recurrent", "auto", 0.5)) < 1
    guide = " ".join((root / "docs" / "guide" / "bloctrain.md").read_text().split())
    for claim in ("The default, `easy_quantile=0.5`, is the most accurate of the easy rules that save at least "
                  "1.5x synaptic operations on every sweep seed",
                  "the fixed threshold buys a few tenths of a point with far fewer exits"):
        assert claim in guide, claim
