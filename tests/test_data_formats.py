import gzip

import numpy as np
import pytest
from scipy.io import wavfile

from hfcore.data.audio import (
    N_FFT, SAMPLE_RATE, WINDOW_SAMPLES, fit_window, log_spectrograms, mix_at_snr, read_wav,
)
from hfcore.data.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_idx_header_is_big_endian_with_magic(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 1], dtype=np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 1])


def test_idx_rejects_wrong_magic(tmp_path):
    (tmp_path / "bad").write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="magic number"):
        read_idx(tmp_path / "bad")


def test_idx_rejects_size_mismatch(tmp_path):
    write_idx(tmp_path / "images", np.zeros((3, 2, 2), dtype=np.uint8))
    data = (tmp_path / "images").read_bytes()
    (tmp_path / "images").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        read_idx(tmp_path / "images")


def test_idx_rejects_truncated_gzip(tmp_path):
    payload = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(200))
    (tmp_path / "x.gz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        read_idx(tmp_path / "x.gz")


def test_read_wav_scales_int16(tmp_path):
    wavfile.write(tmp_path / "a.wav", SAMPLE_RATE, np.array([0, 16384, -32768], dtype=np.int16))
    np.testing.assert_allclose(read_wav(tmp_path / "a.wav"), [0.0, 0.5, -1.0])


def test_read_wav_averages_stereo(tmp_path):
    stereo = np.array([[16384, 0], [0, -16384]], dtype=np.int16)
    wavfile.write(tmp_path / "s.wav", SAMPLE_RATE, stereo)
    np.testing.assert_allclose(read_wav(tmp_path / "s.wav"), [0.25, -0.25])


def test_read_wav_resamples_to_8khz(tmp_path):
    t = np.arange(16000) / 16000
    wavfile.write(tmp_path / "r.wav", 16000, (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16))
    samples = read_wav(tmp_path / "r.wav")
    assert len(samples) == 8000
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 Hz bins over 1 s


def test_read_wav_rejects_garbage(tmp_path):
    (tmp_path / "g.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(ValueError, match="not a readable WAV file"):
        read_wav(tmp_path / "g.wav")


def test_read_wav_rejects_a_file_cut_short(tmp_path):
    wavfile.write(tmp_path / "full.wav", SAMPLE_RATE, np.arange(4000, dtype=np.int16))
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # the header still promises 4000 samples
    with pytest.raises(ValueError, match="cut.wav: truncated WAV file"):
        read_wav(tmp_path / "cut.wav")
    assert len(read_wav(tmp_path / "full.wav")) == 4000


def test_read_wav_passes_other_warnings_on(tmp_path):
    wavfile.write(tmp_path / "a.wav", SAMPLE_RATE, np.arange(100, dtype=np.int16))
    data = bytearray((tmp_path / "a.wav").read_bytes())
    chunk = b"zzzz" + (4).to_bytes(4, "little") + b"abcd"  # an unknown chunk: scipy skips it with a warning
    data[12:12] = chunk
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    (tmp_path / "b.wav").write_bytes(bytes(data))
    with pytest.warns(wavfile.WavFileWarning):
        assert len(read_wav(tmp_path / "b.wav")) == 100


def test_fit_window_centres_and_crops():
    short = fit_window(np.ones(4), 10)
    np.testing.assert_array_equal(short, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    long = fit_window(np.arange(14), 10)
    np.testing.assert_array_equal(long, np.arange(2, 12))


def test_mix_at_snr_reaches_requested_ratio():
    rng = np.random.default_rng(0)
    signal, noise = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    mixed = mix_at_snr(signal, noise, -6.0)
    added = mixed - signal
    snr = 10 * np.log10(np.sum(signal.astype(np.float64) ** 2) / np.sum(added.astype(np.float64) ** 2))
    assert snr == pytest.approx(-6.0, abs=1e-3)


def test_spectrogram_shape_and_tone_frequency_bin():
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    spectrogram = log_spectrograms(tone[None])[0]
    assert spectrogram.shape == (112, 112)
    # 1000 Hz at 8000 / 222 Hz per bin falls in bin 27.75: the peak is bin 28.
    assert int(np.argmax(spectrogram[:, 56])) == round(1000 * N_FFT / SAMPLE_RATE)


def test_spectrogram_of_silence_is_the_log_floor():
    spectrogram = log_spectrograms(np.zeros((1, WINDOW_SAMPLES), dtype=np.float32))
    np.testing.assert_allclose(spectrogram, np.log(1e-10), rtol=1e-6)
