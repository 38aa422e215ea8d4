r"""SHD-style audio-to-spike front end for spoken digits (FSDD).

The Spiking Heidelberg Digits turn speech into spikes with a cochlea model;
this front end is a small stand-in that runs offline on the Free Spoken Digit
Dataset (3,000 mono 8 kHz recordings, ``{digit}_{speaker}_{index}.wav``;
official split: index 0-4 test, 5-49 train).

For a recording :math:`a` (peak-normalised):

1. short-time spectrum, Hann window :math:`w` of ``nfft`` = 256 samples (32 ms)
   every ``hop`` = 80 samples (10 ms), so a 1 s clip gives ~100 frames:
   :math:`P[f, k] = |\mathrm{FFT}(w \cdot a[f\,h : f\,h + n_{fft}])[k]|^2`;
2. a triangular mel filter bank :math:`M` of ``channels`` bands between
   60 Hz and 3.8 kHz, log energies :math:`E[f, c] = \log(\sum_k M[c, k] P[f, k] + \epsilon)`;
3. send-on-delta coding per channel: an *up* spike when the log energy has
   risen by more than :math:`\delta` since the last reference level, a *down*
   spike when it has fallen by more than :math:`\delta`; after a spike the
   reference moves to the current level:

   .. math::

       S^{up}[f, c] = [E[f, c] - R[f-1, c] > \delta],\quad
       S^{down}[f, c] = [R[f-1, c] - E[f, c] > \delta],

       R[0, c] = E[0, c],\quad
       R[f, c] = E[f, c] \text{ if } S^{up}[f, c] + S^{down}[f, c] > 0 \text{ else } R[f-1, c]

   (at most one spike per channel and frame; frame 0 only sets the reference);

4. frames are cropped or zero-padded to ``num_steps`` time steps.

The output raster is ``[num_steps, 2·channels]`` (up channels, then down),
one time step per 10 ms frame. With the defaults (32 bands, :math:`\delta = 0.6`)
the whole FSDD encodes in ~5 s on one CPU core and ~8 % of the entries are spikes.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["fsdd_root", "mel_filterbank", "encode_audio", "FSDD", "fsdd_spikes", "input_sparsity"]

SAMPLE_RATE = 8000
HOP, NFFT = 80, 256  # default frames: 32 ms windows every 10 ms
_ENCODER_VERSION = 1  # bump when encode_audio changes, so stale caches are not reused


def fsdd_root() -> Optional[Path]:
    """Where the FSDD lives: ``$SNNTORCH_SPARSE_FSDD``, else ``../shared/data/fsdd`` beside the repo."""
    env = os.environ.get("SNNTORCH_SPARSE_FSDD")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd")
    for c in candidates:
        if (c / "recordings").is_dir():
            return c
    return None


def mel_filterbank(channels: int, nfft: int = NFFT, sr: int = SAMPLE_RATE,
                   fmin: float = 60.0, fmax: float = 3800.0) -> np.ndarray:
    """Triangular mel filters, ``[channels, nfft // 2 + 1]``."""
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def imel(m):
        return 700 * (10 ** (m / 2595) - 1)

    edges = imel(np.linspace(mel(fmin), mel(fmax), channels + 2))
    bins = np.fft.rfftfreq(nfft, 1 / sr)
    fb = np.zeros((channels, len(bins)))
    for i in range(channels):
        lo, c, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


def encode_audio(signal: np.ndarray, num_steps: int = 100, channels: int = 32, delta: float = 0.6,
                 hop: int = HOP, nfft: int = NFFT, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Encode one mono recording into a ``[num_steps, 2·channels]`` float32 spike raster."""
    if num_steps <= 0:
        raise ValueError(f"num_steps must be > 0, got {num_steps}")
    if channels <= 0:
        raise ValueError(f"channels must be > 0, got {channels}")
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    a = np.asarray(signal, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"signal must be mono (1-D), got shape {a.shape}")
    if a.size == 0:
        raise ValueError("signal is empty (0 samples); expected a 1-D recording with at least one sample")
    a = a / (np.abs(a).max() + 1e-9)
    if len(a) < nfft:
        a = np.pad(a, (0, nfft - len(a)))
    n = 1 + (len(a) - nfft) // hop
    idx = np.arange(nfft)[None, :] + hop * np.arange(n)[:, None]
    frames = a[idx] * np.hanning(nfft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    loge = np.log(power @ mel_filterbank(channels, nfft, sr).T + 1e-3)  # [frames, channels]
    out = np.zeros((num_steps, 2 * channels), dtype=np.float32)
    ref = loge[0].copy()
    for t in range(1, min(n, num_steps)):
        up = loge[t] - ref > delta
        down = ref - loge[t] > delta
        out[t, :channels] = up
        out[t, channels:] = down
        ref = np.where(up | down, loge[t], ref)
    return out


def _parse_name(path: Path):
    """``{digit}_{speaker}_{index}.wav`` -> ``(digit, speaker, index)``, or ``None`` for other names."""
    parts = path.stem.split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[0]), parts[1], int(parts[2])


def _read_wav(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    sr, a = wavfile.read(path)
    if sr != SAMPLE_RATE:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz audio, got {sr} Hz")
    return a if a.ndim == 1 else a.mean(1)


class FSDD(Dataset):
    """The Free Spoken Digit Dataset as spike rasters ``[T, 2·channels]`` and digit labels.

    Args:
        root: folder holding ``recordings/`` (default :func:`fsdd_root`).
        train: training split (index 5-49) or test split (index 0-4).
        num_steps, channels, delta, hop, nfft: encoding settings (see :func:`encode_audio`;
            the defaults give 10 ms frames; ``channels=350, hop=8, nfft=1024,
            delta=0.5, num_steps=500`` gives SHD's shape, 700 inputs at 1 ms, with
            about 2 % of the entries spikes).
        cache_dir: where encoded tensors are cached as ``fsdd-<hash>.pt`` (``None``:
            ``~/.cache/snntorch_sparse``; ``False``: no cache). The hash covers the file
            list and the encoding settings.
        max_files: keep only ``max_files`` files of the split, taken round-robin over the
            digits so every class is present (for tests and quick runs).
    """

    def __init__(self, root=None, train: bool = True, num_steps: int = 100, channels: int = 32,
                 delta: float = 0.6, cache_dir=None, max_files: Optional[int] = None, hop: int = HOP,
                 nfft: int = NFFT):
        if not isinstance(num_steps, int) or num_steps <= 0:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not delta > 0:
            raise ValueError(f"delta must be > 0, got {delta!r}")
        if not isinstance(hop, int) or hop <= 0:
            raise ValueError(f"hop must be a positive int (samples between frames), got {hop!r}")
        if not isinstance(nfft, int) or nfft < 2:
            raise ValueError(f"nfft must be an int >= 2 (samples per frame), got {nfft!r}")
        if max_files is not None and max_files <= 0:
            raise ValueError(f"max_files must be a positive int or None, got {max_files!r}")
        root = Path(root) if root is not None else fsdd_root()
        if root is None or not (root / "recordings").is_dir():
            raise ValueError(f"root must be a folder with recordings/*.wav (the FSDD); got {root}. "
                             "Set SNNTORCH_SPARSE_FSDD or pass root=")
        files = [f for f in sorted((root / "recordings").glob("*.wav")) if _parse_name(f) is not None]
        files = [f for f in files if (_parse_name(f)[2] >= 5) == train]
        if max_files is not None:  # round-robin over digits, so a subset keeps every class
            by_digit = {}
            for f in files:
                by_digit.setdefault(_parse_name(f)[0], []).append(f)
            order = sorted(by_digit)
            files = [by_digit[d][i] for i in range(max(map(len, by_digit.values()), default=0))
                     for d in order if i < len(by_digit[d])][:max_files]
        if not files:
            raise ValueError(f"no recordings of the {'train' if train else 'test'} split under {root}")
        self.files = files
        self.settings = dict(num_steps=num_steps, channels=channels, delta=delta)
        if (hop, nfft) != (HOP, NFFT):  # so that caches of the default encoding keep their names
            self.settings.update(hop=hop, nfft=nfft)
        self.data, self.targets = self._load(cache_dir)

    def _load(self, cache_dir):
        ident = (_ENCODER_VERSION, sorted(str(f) for f in self.files), sorted(self.settings.items()))
        key = hashlib.sha1(repr(ident).encode()).hexdigest()[:16]
        cache = None
        if cache_dir is not False:
            cache = Path(cache_dir or Path.home() / ".cache" / "snntorch_sparse") / f"fsdd-{key}.pt"
            if cache.exists():
                d = torch.load(cache)
                return d["x"], d["y"]
        x = torch.from_numpy(np.stack([encode_audio(_read_wav(f), **self.settings) for f in self.files]))
        y = torch.tensor([_parse_name(f)[0] for f in self.files])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"x": x, "y": y}, cache)
        return x, y

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i], self.targets[i]


def fsdd_spikes(num_steps: int = 100, channels: int = 32, delta: float = 0.6, root=None, cache_dir=None,
                max_files: Optional[int] = None, hop: int = HOP, nfft: int = NFFT):
    """Both splits, time-major: ``((x_train [T, N, 2·channels], y_train), (x_test, y_test))``.

    Same arguments as :class:`FSDD` (``max_files`` limits each split).
    """
    out = []
    for train in (True, False):
        ds = FSDD(root, train=train, num_steps=num_steps, channels=channels, delta=delta, cache_dir=cache_dir,
                  max_files=max_files, hop=hop, nfft=nfft)
        out.append((ds.data.transpose(0, 1).contiguous(), ds.targets))
    return tuple(out)


def input_sparsity(x: torch.Tensor) -> float:
    """Fraction of non-zero entries of a spike raster (the input density)."""
    return float((x != 0).float().mean())
