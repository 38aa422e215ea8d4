"""Spiking ResNet parts from snnTorch neurons, for the reference ResNet-9 / ResNet-11 SNNs."""
from __future__ import annotations

import snntorch as snn
from torch import nn

__all__ = ["BatchNormTT2d", "SpikingBasicBlock", "conv_bn_lif", "spiking_resnet9"]


class BatchNormTT2d(nn.Module):
    """Batch norm through time (BNTT): one ``BatchNorm2d`` per time step.

    Called once per step; the step counter is rewound by ``reset_time()``
    (done by :func:`~snntorch_sparse.bloc.run_sequence`).
    """

    def __init__(self, num_features: int, num_steps: int):
        super().__init__()
        self.bns = nn.ModuleList(nn.BatchNorm2d(num_features) for _ in range(num_steps))
        self.t = 0

    def reset_time(self) -> None:
        self.t = 0

    def forward(self, x):
        out = self.bns[min(self.t, len(self.bns) - 1)](x)
        self.t += 1
        return out


def _norm(kind: str, ch: int, num_steps):
    if kind == "bn":
        return nn.BatchNorm2d(ch)
    if kind == "bntt":
        if not num_steps:
            raise ValueError("norm='bntt' needs num_steps")
        return BatchNormTT2d(ch, num_steps)
    raise ValueError(f"norm must be 'bn' or 'bntt', got {kind!r}")


class SpikingBasicBlock(nn.Module):
    """conv3x3-norm-LIF-conv3x3-norm, plus a (1x1 conv-norm) shortcut, LIF after the add.

    Per-step module (``snn.Leaky(init_hidden=True)``): input ``[B, C, H, W]`` spikes.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, beta: float = 0.9, spike_grad=None,
                 norm: str = "bn", num_steps=None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, out_ch, num_steps)
        self.lif1 = snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, out_ch, num_steps)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          _norm(norm, out_ch, num_steps))
        self.lif2 = snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True)

    def forward(self, x):
        out = self.bn2(self.conv2(self.lif1(self.bn1(self.conv1(x)))))
        return self.lif2(out + self.shortcut(x))


def conv_bn_lif(in_ch, out_ch, beta=0.9, spike_grad=None, pool=False, norm="bn", num_steps=None):
    """``Conv2d(3x3, stride 1, padding 1, no bias) -> norm -> [MaxPool2d(2)] -> snn.Leaky``, as an ``nn.Sequential``.

    The building block of :func:`spiking_resnet9`, called once per time step like
    any snnTorch layer stack (``snn.Leaky(init_hidden=True)``).

    Args:
        in_ch, out_ch: input and output channels.
        beta: the neuron's membrane decay.
        spike_grad: its surrogate (``None``: snnTorch's default ``atan``).
        pool: add a 2x2 max-pool before the neuron (halves height and width).
        norm: ``"bn"`` (``nn.BatchNorm2d``) or ``"bntt"`` (:class:`BatchNormTT2d`,
            batch norm with statistics per time step).
        num_steps: time steps, needed by ``norm="bntt"``.

    Example::

        block = conv_bn_lif(3, 64, pool=True)
        spk = block(torch.rand(8, 3, 32, 32))   # one time step: [8, 64, 16, 16] spikes
    """
    layers = [nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), _norm(norm, out_ch, num_steps)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True))
    return nn.Sequential(*layers)


def spiking_resnet9(num_classes: int = 10, beta: float = 0.9, spike_grad=None, in_channels: int = 3,
                    width: int = 64, norm: str = "bn", num_steps=None) -> nn.Sequential:
    """ResNet-9 SNN (prep, 3 stages with 2 residual blocks, pooled linear read-out).

    Split into 3 blocks with ``boundaries=[3, 5]``: [prep, stage 1, res 1],
    [stage 2, stage 3], [res 3, pool, classifier].
    """
    w = width
    kw = dict(beta=beta, spike_grad=spike_grad, norm=norm, num_steps=num_steps)
    return nn.Sequential(
        conv_bn_lif(in_channels, w, **kw),
        conv_bn_lif(w, 2 * w, pool=True, **kw),
        SpikingBasicBlock(2 * w, 2 * w, **kw),
        conv_bn_lif(2 * w, 4 * w, pool=True, **kw),
        conv_bn_lif(4 * w, 8 * w, pool=True, **kw),
        SpikingBasicBlock(8 * w, 8 * w, **kw),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8 * w, num_classes),
    )
