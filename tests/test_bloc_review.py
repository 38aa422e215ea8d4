"""BlocTrain: state round trips, exact resume, argument checks, parameter-free blocks, op counting."""
import io
import warnings

import pytest
import snntorch as snn
import torch
from torch import nn

from snntorch_sparse import bloc


def _model(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(16, 16),
                      snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True))
    with torch.no_grad():
        m[0].weight.mul_(3)
    return m


def _data(n=120):
    """Class ``c`` fires inputs ``3c .. 3c+2`` more often: some classes become easy, some stay hard."""
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 4, (n,), generator=g)
    p = torch.full((n, 12), 0.1)
    for c in range(4):
        p[y == c, 3 * c:3 * c + 3] = 0.8
    return (torch.rand(6, n, 12, generator=g) < p).float(), y


def _fit(net, x, y, **kw):
    tr = bloc.BlocTrainer(net, epochs=3, hcd_epochs=2, easy_threshold=0.9, progress=False, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.fit((x, y), (x, y))
    return tr


# ------------------------------------------------------------------ 1. routing in the state dict

def test_state_dict_round_trip_keeps_hard_classes_and_predictions():
    x, y = _data()
    net = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    _fit(net, x, y)
    assert frozenset() < net.hard_classes[2] < net.hard_classes[0]  # routing is not trivial
    pred, exits = bloc.predict(net, x)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    fresh = bloc.split(_model(1), [2, 4], 4, sample=x[:, :8])
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.hard_classes == net.hard_classes
    pred2, exits2 = bloc.predict(fresh, x)
    assert torch.equal(pred2, pred) and torch.equal(exits2, exits)


def test_hard_classes_view_and_old_state_dicts():
    x = _data()[0]
    net = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    assert net.hard_classes == (frozenset(range(4)), frozenset(), frozenset())
    net.hard_classes = [{0, 1, 2, 3}, {1, 2}, {2}]
    assert net.hard_mask.tolist()[1] == [False, True, True, False]
    with pytest.raises(TypeError):
        net.hard_classes[1] = {3}  # a read-only view: no silent no-op
    with pytest.raises(ValueError, match="hard classes must lie in 0..3"):
        net.set_hard_classes(1, {4})
    old = {k: v for k, v in net.state_dict().items() if k != "hard_mask"}  # saved before hard_mask existed
    fresh = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    with pytest.warns(UserWarning, match="hard_classes NOT restored"):
        fresh.load_state_dict(old)
    assert torch.equal(fresh.blocks[0][0].weight, net.blocks[0][0].weight)


# ------------------------------------------------------------------ 2. exact resume

def test_resume_reproduces_uninterrupted_run(tmp_path):
    x, y = _data()
    net = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    full = _fit(net, x, y, checkpoint_dir=tmp_path).history
    net2 = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    tr2 = bloc.BlocTrainer(net2, epochs=3, hcd_epochs=2, easy_threshold=0.9, progress=False)
    resumed = tr2.fit((x, y), (x, y), resume=tmp_path / "bloc_1.pt")
    assert resumed == full
    ref = net.state_dict()
    for k, v in net2.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert [torch.equal(a, b) for a, b in zip(bloc.predict(net, x), bloc.predict(net2, x))] == [True, True]


# ------------------------------------------------------------------ 3. silent bad settings

@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_batch_size_must_be_positive_int(bad):
    net = bloc.split(_model(), [2, 4], 4, sample=_data()[0][:, :8])
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1"):
        bloc.BlocTrainer(net, batch_size=bad)


def test_second_fit_raises():
    x, y = _data(40)
    net = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    tr = _fit(net, x, y)
    n = len(tr.history)
    with pytest.raises(RuntimeError, match="fit was already called"):
        tr.fit((x, y), (x, y))
    assert len(tr.history) == n


def test_split_has_no_side_effects_on_batchnorm():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), snn.Leaky(beta=0.9, init_hidden=True),
                      nn.Flatten(), nn.Linear(4 * 8 * 8, 3), snn.Leaky(beta=0.9, init_hidden=True))
    m[3].eval()  # a mixed-mode model keeps its modes
    before = {k: v.clone() for k, v in m.state_dict().items()}
    bloc.split(m, [3], 3, sample=(torch.rand(4, 8, 1, 8, 8) < 0.3).float())
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [mod.training for mod in m] == [True, True, True, False, True, True]


# ------------------------------------------------------------------ 4. blocks without parameters

def test_block_without_parameters_trains():
    x, y = _data(40)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(12, 16), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(16, 4),
                      snn.Leaky(beta=0.9, init_hidden=True))
    net = bloc.split(m, [3], 4, sample=x)  # block 1: a lone neuron read out by TimeMean
    assert isinstance(net.heads[1], bloc.TimeMean)
    hcd0 = net.hcds[0].fc.weight.clone()
    tr = bloc.BlocTrainer(net, epochs=1, hcd_epochs=1, easy_threshold=1.0, progress=False)
    with pytest.warns(UserWarning, match="nothing to train in block 1"):
        hist = tr.fit((x, y), (x, y))
    assert [r["block"] for r in hist] == [0, 1] and not torch.equal(hcd0, net.hcds[0].fc.weight)
    pred, _ = bloc.predict(net, x)
    assert ((pred >= 0) & (pred < 4)).all()


# ------------------------------------------------------------------ 5. clear errors

def test_clear_errors_for_shapes_dtypes_and_sizes():
    x, y = _data(40)
    net = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    tr = bloc.BlocTrainer(net, epochs=1, hcd_epochs=0, progress=False)
    with pytest.raises(ValueError, match=r"train x must be time-major.*batch-major"):
        tr.fit((x.transpose(0, 1), y), (x, y))
    with pytest.raises(ValueError, match=r"train x must be time-major .* = 30"):
        tr.fit((x, y[:30]), (x, y))
    with pytest.raises(TypeError, match="train labels must be a 1-D integer tensor.*bool"):
        tr.fit((x, y < 2), (x, y))
    with pytest.raises(TypeError, match="val labels must be a 1-D integer tensor.*float"):
        tr.fit((x, y), (x, y.double()))
    with pytest.raises(ValueError, match="val set is empty"):
        tr.fit((x, y), (x[:, :0], y[:0]))
    with pytest.raises(TypeError, match="boundaries must be a sequence"):
        bloc.split(_model(), 2, 4, sample=x)
    with pytest.raises(ValueError, match=r"x must be time-major with shape \[T, B, \.\.\.\]"):
        bloc.predict(net, x[0])
    with pytest.raises(ValueError, match=r"x must be time-major with shape \[T, B, \.\.\.\]"):
        bloc.report(net, x[0], y)
    with pytest.raises(ValueError, match="y must be a 1-D tensor of x.shape"):
        bloc.report(net, x, y[:10])


def test_int32_labels_train_as_int64():
    x, y = _data(40)
    a = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    b = bloc.split(_model(), [2, 4], 4, sample=x[:, :8])
    assert _fit(a, x, y.int()).history == _fit(b, x, y).history
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


# ------------------------------------------------------------------ 6. counting

def _count(m, x):
    with bloc.count_ops(m) as c:
        m(x)
    return c.synops, c.macs


def test_count_depthwise_and_grouped_conv2d():
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    x = torch.zeros(1, 4, 6, 6)
    x[0, :, 2, 2] = 1  # one interior spike per channel: reaches 3x3 outputs of its own channel
    assert _count(dw, x) == (4 * 9, 1 * 4 * 6 * 6 * 1 * 9)  # MACs: outputs x C_in/g x kernel volume
    x[0, :, 2, 2], x[0, :, 0, 0] = 0, 1  # corner spikes reach only 2x2 outputs
    assert _count(dw, x)[0] == 4 * 4
    g2 = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    x = torch.zeros(1, 4, 6, 6)
    x[0, 0, 2, 2] = 1  # reaches the 3 output channels of its group
    assert _count(g2, x) == (3 * 9, 6 * 6 * 6 * 2 * 9)


def test_count_conv1d_and_conv3d():
    c1 = nn.Conv1d(4, 8, 3, padding=1)
    # all-ones input: 8 interior positions reach 3 outputs, the 2 edge ones 2 (per out channel)
    assert _count(c1, torch.ones(2, 4, 10)) == (2 * 4 * 8 * (8 * 3 + 2 * 2), 2 * 8 * 10 * 4 * 3)
    c3 = nn.Conv3d(2, 6, (1, 3, 3), stride=(1, 2, 2))
    x = torch.zeros(1, 2, 3, 5, 5)
    x[0, 0, 1, 2, 2] = 1  # output 3x2x2; the spike sits in the window of all 2x2 outputs of depth 1
    assert _count(c3, x) == (6 * 4, 6 * 3 * 2 * 2 * 2 * 9)


# ------------------------------------------------------------------ 7. early-exit rule (documented)

def test_confidence_only_delays_exit():
    x = _data(8)[0]
    net = bloc.split(_model(), [2, 4], 4, sample=x)
    with torch.no_grad():
        net.hcds[0].fc.weight.zero_()
        net.hcds[0].fc.bias.copy_(torch.tensor([1.0, 0.0]))  # HCD 0: "easy" for everyone
    assert bloc.predict(net, x)[1].tolist() == [0] * 8
    # HCD easy AND confident: an unreachable confidence keeps every sample past block 0
    assert (bloc.predict(net, x, confidence=1.0)[1] > 0).all()
