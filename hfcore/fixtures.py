"""Tiny AV-MNIST sources in the real file formats, for tests and smoke runs.

``write_fixture_data(folder)`` writes ``mnist/t10k-*-idx?-ubyte.gz`` (IDX, gzip) and
``fsdd/recordings/DIGIT_SPEAKER_INDEX.wav`` (8 kHz, 16-bit PCM mono), so that every loader
runs on them exactly as on the real data. Images are noisy class-specific patterns and
recordings are noisy tones whose pitch depends on the digit, so models can learn them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

from .data.audio import SAMPLE_RATE
from .data.idx import write_idx

FIXTURE_INDICES = (0, 1, 2, 3, 36, 37, 42, 43)
FIXTURE_SPEAKERS = ("alice", "bob")


def fixture_images(per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``per_class`` 28x28 uint8 images of each digit and their labels."""
    labels = np.repeat(np.arange(10), per_class)
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.int32)
    for row, digit in enumerate(labels):
        top = 2 + 2 * digit
        images[row, top : top + 6, 4:24] += 180  # a bar whose height encodes the digit
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def fixture_recording(digit: int, rng: np.random.Generator) -> np.ndarray:
    """Return a 0.3-0.6 s int16 tone at ``300 + 150 * digit`` Hz with noise."""
    length = int(SAMPLE_RATE * rng.uniform(0.3, 0.6))
    t = np.arange(length) / SAMPLE_RATE
    wave = 0.5 * np.sin(2 * np.pi * (300 + 150 * digit) * t) + 0.05 * rng.standard_normal(length)
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def write_fixture_data(folder: str | Path, *, images_per_class: int = 30, seed: int = 0) -> Path:
    """Write the fixture MNIST test set and FSDD recordings under ``folder``; return it."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    (folder / "mnist").mkdir(parents=True, exist_ok=True)
    images, labels = fixture_images(images_per_class, rng)
    write_idx(folder / "mnist" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    recordings = folder / "fsdd" / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    for digit in range(10):
        for speaker in FIXTURE_SPEAKERS:
            for index in FIXTURE_INDICES:
                wavfile.write(recordings / f"{digit}_{speaker}_{index}.wav", SAMPLE_RATE, fixture_recording(digit, rng))
    return folder
