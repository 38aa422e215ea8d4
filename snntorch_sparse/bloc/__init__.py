"""BlocTrain: block-wise training with auxiliary heads, hard-class detectors and early exit.

The method of G. Srinivasan and K. Roy, "BlocTrain: Block-Wise Conditional Training and
Inference for Efficient Spike-Based Deep Learning", Frontiers in Neuroscience 15:603433
(2021), doi:10.3389/fnins.2021.603433; the guide "BlocTrain" describes this implementation.

Typical use::

    from snntorch_sparse import bloc
    net = bloc.split(model, boundaries=[2, 4], num_classes=10, sample=x_train[:, :8])
    trainer = bloc.BlocTrainer(net, epochs=20, easy_threshold=0.95)
    trainer.fit((x_train, y_train), (x_val, y_val))
    pred, exit_block = bloc.predict(net, x_test)
    print(bloc.report(net, x_test, y_test))
    print(trainer.training_memory(x_train[:, :64], y_train[:64]))

On sequences with temporal structure (speech, SHD) ``split`` picks heads and HCDs
that read time (``readout="auto"``: :class:`LeakyReadout`, max over time of a
leaky membrane) and the trainer sets each block's easy threshold from its
validation accuracies (``easy_threshold="auto"``); see ``examples/bloc_fsdd.py``.
"""
from .counting import count_ops
from .heads import (HardClassDetector, LeakyReadout, RateHead, RecurrentReadout, TimeLast, TimeMax, TimeMean,
                    has_temporal_structure, logits_of, temporal_structure)
from .inference import predict, report
from .resnet import BatchNormTT2d, SpikingBasicBlock, conv_bn_lif, spiking_resnet9
from .sequence import is_multi_step, run_sequence
from .split import BlocNet, split
from .trainer import BlocTrainer

__all__ = ["split", "BlocNet", "BlocTrainer", "predict", "report", "run_sequence", "is_multi_step",
           "RateHead", "HardClassDetector", "TimeMean", "TimeMax", "TimeLast", "LeakyReadout", "RecurrentReadout",
           "temporal_structure", "has_temporal_structure", "logits_of", "count_ops",
           "SpikingBasicBlock", "BatchNormTT2d", "conv_bn_lif", "spiking_resnet9"]
