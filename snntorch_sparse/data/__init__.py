"""Datasets as time-major spike tensors ``[T, B, N]``.

* :mod:`.digits` -- scikit-learn's digits, latency-coded (offline).
* :mod:`.audio` -- the spoken-digit (FSDD) audio-to-spike front end.
* :mod:`.tonic_datasets` -- SHD and N-MNIST through tonic; MNIST-style IDX files, latency-coded.
"""
from .audio import FSDD, encode_audio, fsdd_root, fsdd_spikes, input_sparsity, mel_filterbank
from .digits import digits_loaders, load_digits_spikes, time_major_collate
from .tonic_datasets import (IDXLatency, TonicSpikes, nmnist_dataset, nmnist_missing_files, read_idx, shd_dataset,
                             shd_missing_files)

__all__ = ["FSDD", "encode_audio", "fsdd_root", "fsdd_spikes", "input_sparsity", "mel_filterbank",
           "digits_loaders", "load_digits_spikes", "time_major_collate",
           "IDXLatency", "TonicSpikes", "nmnist_dataset", "nmnist_missing_files", "read_idx", "shd_dataset",
           "shd_missing_files"]
