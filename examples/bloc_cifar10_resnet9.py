"""BlocTrain on CIFAR-10 with a spiking ResNet-9 in 3 blocks (the reference setting).

Reference (G. Srinivasan and K. Roy, "BlocTrain: Block-Wise Conditional Training and
Inference for Efficient Spike-Based Deep Learning", Front. Neurosci. 15:603433, 2021,
doi:10.3389/fnins.2021.603433): 86.4% test accuracy, 2.95x less training memory and
1.89x less inference compute than end-to-end training of the same network;
1.45x inference memory overhead (heads and HCDs). This script prints what it
reaches next to those numbers.

Needs CIFAR-10's python batches (``cifar-10-batches-py/data_batch_1..5``,
``test_batch``; download ``cifar-10-python.tar.gz`` from the CIFAR page and unpack):

    python examples/bloc_cifar10_resnet9.py --data ~/data/cifar-10-batches-py --epochs 30
    python examples/bloc_cifar10_resnet9.py --smoke     # one step on random tensors

Input coding: Poisson rate coding (``snntorch.spikegen.rate``) over ``--steps`` steps.
The last 10k training images are the validation split that decides easy classes.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from snntorch import spikegen, surrogate

from snntorch_sparse import bloc

REFERENCE = {"accuracy": 0.864, "training_memory_ratio": 2.95, "inference_compute_ratio": 1.89}


def load_cifar10(folder: Path):
    def read(name):
        with open(folder / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = torch.tensor(np.asarray(d[b"data"], dtype=np.float32).reshape(-1, 3, 32, 32) / 255.0)
        return x, torch.tensor(d[b"labels"])

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return (x[:40000], y[:40000]), (x[40000:], y[40000:]), read("test_batch")


def encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    return spikegen.rate(x, num_steps=steps)  # [T, N, 3, 32, 32]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="folder cifar-10-batches-py")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--easy-threshold", type=float, default=0.9)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="one step on random CIFAR-shaped tensors")
    args = p.parse_args(argv)

    if args.smoke:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(32, 3, 32, 32, generator=g)
        y = torch.arange(32) % 10
        train, val, test = (x, y), (x, y), (x, y)
        args.epochs, args.width, args.steps, args.batch = 1, 4, 2, 16
    else:
        if args.data is None:
            p.error("--data is required (or --smoke)")
        train, val, test = load_cifar10(args.data)

    model = bloc.spiking_resnet9(10, beta=0.9, spike_grad=surrogate.fast_sigmoid(25), width=args.width)
    xtr, xva, xte = (encode(d[0], args.steps) for d in (train, val, test))
    net = bloc.split(model, [3, 5], 10, sample=xtr[:, :4])
    trainer = bloc.BlocTrainer(net, epochs=args.epochs, hcd_epochs=max(1, args.epochs // 3),
                               easy_threshold=args.easy_threshold, batch_size=args.batch, device=args.device,
                               optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9))
    trainer.fit((xtr, train[1]), (xva, val[1]))
    rep = bloc.report(net.to(args.device), xte.to(args.device), test[1].to(args.device), batch_size=args.batch)
    mem = trainer.training_memory(xtr[:, :args.batch], train[1][:args.batch])
    print(f"accuracy (early exit) {rep['accuracy_early_exit']:.4f}   reference {REFERENCE['accuracy']}")
    print(f"training memory ratio {mem['saved_ratio']:.2f}x        reference {REFERENCE['training_memory_ratio']}x")
    print(f"inference MAC ratio   {rep['macs_ratio']:.2f}x        reference {REFERENCE['inference_compute_ratio']}x")
    print(f"exit fractions {rep['exit_fraction']}, head/HCD parameter overhead {rep['parameters']['overhead']:.3f}")
    return rep, mem


if __name__ == "__main__":
    main()
