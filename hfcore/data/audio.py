"""Audio input for AV-MNIST: WAV reading, fixed-length windows, noise mixing and log
spectrograms.

All functions work at ``SAMPLE_RATE`` (8 kHz, the rate of FSDD). A window of
``WINDOW_SAMPLES`` (1 s) gives a 112 x 112 log power spectrogram with ``N_FFT = 222``
(112 frequency bins) and ``HOP = 72`` (1 + 8000 // 72 = 112 frames, centred frames with
zero padding).
"""

from __future__ import annotations

import logging
import struct
import warnings
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
WINDOW_SAMPLES = SAMPLE_RATE
N_FFT = 222
HOP = 72
SPECTROGRAM_SIZE = 112
LOG_EPS = 1e-10


def read_wav(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a WAV file as float32 mono samples in [-1, 1] at ``sample_rate``.

    Integer PCM is scaled by its type's range. Multi-channel audio is averaged to mono and
    other sample rates are resampled with a polyphase filter (``scipy.signal.resample_poly``);
    both are logged. Raises ValueError for a file that is not a readable WAV file, or that
    ends before the length its header gives.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError, struct.error) as error:
        raise ValueError(f"{path}: not a readable WAV file ({error}); replace it with an intact copy") from error
    # scipy reads a file cut short with only a warning, returning the samples that are there.
    truncated = [str(w.message) for w in caught if "EOF prematurely" in str(w.message)]
    if truncated:
        raise ValueError(f"{path}: truncated WAV file ({truncated[0]}); replace it with an intact copy")
    for warning in caught:  # the others (an unknown chunk skipped, say) still reach the caller
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        if info.min == 0:  # unsigned 8-bit PCM is offset by 128
            data = (data.astype(np.float32) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        else:
            data = data.astype(np.float32) / float(-info.min)
    else:
        data = data.astype(np.float32)
    if data.ndim == 2:
        logger.info("%s: averaging %d channels to mono", path, data.shape[1])
        data = data.mean(axis=1)
    if data.size == 0:
        raise ValueError(f"{path}: WAV file contains no samples; replace it with an intact copy")
    if rate != sample_rate:
        logger.info("%s: resampling from %d Hz to %d Hz", path, rate, sample_rate)
        divisor = gcd(int(rate), int(sample_rate))
        data = resample_poly(data, sample_rate // divisor, rate // divisor).astype(np.float32)
    return data


def fit_window(samples: np.ndarray, length: int = WINDOW_SAMPLES, *, offset: int | None = None) -> np.ndarray:
    """Return ``length`` samples: the clip centred in zeros, or a crop of a longer clip.

    ``offset`` places a shorter clip at that sample instead of the centre (or, for a longer
    clip, starts the crop there).
    """
    samples = np.asarray(samples, dtype=np.float32)
    out = np.zeros(length, dtype=np.float32)
    if len(samples) >= length:
        start = (len(samples) - length) // 2 if offset is None else min(offset, len(samples) - length)
        out[:] = samples[start : start + length]
    else:
        start = (length - len(samples)) // 2 if offset is None else min(offset, length - len(samples))
        out[start : start + len(samples)] = samples
    return out


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Add ``noise`` to ``signal``, scaled so that 10 log10(sum s^2 / sum n^2) = ``snr_db``.

    Both powers are taken over the whole window. Silent noise leaves the signal unchanged.
    """
    signal_power = float(np.sum(signal.astype(np.float64) ** 2))
    noise_power = float(np.sum(noise.astype(np.float64) ** 2))
    if noise_power == 0.0 or signal_power == 0.0:
        return signal.copy()
    scale = np.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (signal + scale * noise).astype(np.float32)


def log_spectrograms(windows: np.ndarray, *, chunk: int = 512) -> np.ndarray:
    """Return ``log(|STFT|^2 + 1e-10)`` of each 1 s window as float32 ``(n, 112, 112)``.

    Rows are frequency bins (0 to 4 kHz), columns are frames. Frames are centred with zero
    padding and a periodic Hann window.
    """
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise ValueError(f"windows must be (n, {WINDOW_SAMPLES}), got {windows.shape}")
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    pad = N_FFT // 2
    starts = np.arange(SPECTROGRAM_SIZE) * HOP
    frame_index = starts[:, None] + np.arange(N_FFT)[None, :]
    out = np.empty((len(windows), SPECTROGRAM_SIZE, SPECTROGRAM_SIZE), dtype=np.float32)
    for begin in range(0, len(windows), chunk):
        padded = np.pad(windows[begin : begin + chunk], ((0, 0), (pad, pad)))
        frames = padded[:, frame_index] * hann  # (n, frames, n_fft)
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # (n, frames, 112)
        out[begin : begin + chunk] = np.log(power + LOG_EPS).transpose(0, 2, 1)
    return out
