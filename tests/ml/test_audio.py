"""Decoding and validating uploads, analysis windows and pitch shifting in ml.audio."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.audio import (
    WINDOW_ELECTRONIC,
    WINDOW_POP,
    AudioDecodeError,
    decode_validate,
    load_audio,
    pitch_shift,
    probe,
    split_windows,
    window_starts,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _sine(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _harmonic(frequency: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    partials = sum(np.sin(2 * np.pi * frequency * h * t) / h for h in range(1, 7))
    return (0.3 * partials).astype(np.float32)


def _peak_hz(audio: np.ndarray, sample_rate: int, low_hz: float = 20.0, high_hz: float = 8000.0) -> float:
    """Strongest spectral peak in [low_hz, high_hz], via a zero-padded FFT and parabolic interpolation."""
    trimmed = audio[sample_rate // 4 : -sample_rate // 4]  # edges of a processed signal are not steady
    size = 1 << 20
    spectrum = np.abs(np.fft.rfft(trimmed * np.hanning(trimmed.size), size))
    spectrum[: int(low_hz * size / sample_rate)] = 0
    spectrum[int(high_hz * size / sample_rate) :] = 0
    peak = int(np.argmax(spectrum))
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2])
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (peak + offset) * sample_rate / size


def _cents(measured: float, target: float) -> float:
    return 1200 * np.log2(measured / target)


# --- decoding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [("wav", None), ("flac", None), ("ogg", None), ("mp3", None), ("aiff", None), ("wav", "FLOAT")],
)
def test_every_supported_format_decodes_to_mono_16k(tmp_path, suffix, subtype):
    stereo = np.stack([_sine(440, 1.0, 44_100), _sine(440, 1.0, 44_100)], axis=1)
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, stereo, 44_100, subtype=subtype)

    info = probe(path)
    audio = load_audio(path)

    assert info.channels == 2 and info.sample_rate == 44_100
    assert info.format == {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "aiff": "AIFF"}[suffix]
    assert abs(info.duration_s - 1.0) < 0.1
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 16_000) < 1_600  # codecs may add or trim a little padding
    assert abs(_cents(_peak_hz(audio, 16_000), 440)) < 5


def test_load_audio_max_duration_reads_only_the_beginning(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, _sine(220, 3.0, 22_050), 22_050)
    assert load_audio(path, max_duration_s=1.0).size == 16_000
    assert load_audio(path, sample_rate=8_000).size == 24_000


def test_decode_validate_returns_info_and_16k_audio(tmp_path):
    path = tmp_path / "ok.flac"
    sf.write(path, _sine(330, 2.0, 48_000), 48_000)
    info, audio = decode_validate(path, max_duration_s=60)
    assert (info.sample_rate, info.channels, info.frames, info.format) == (48_000, 1, 96_000, "FLAC")
    assert info.duration_s == pytest.approx(2.0)
    assert audio.size == 32_000 and audio.dtype == np.float32


def _write_bad_file(tmp_path: Path, kind: str) -> Path:
    if kind == "random_bytes":
        path = tmp_path / "noise.mp3"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated_header":
        good = tmp_path / "good.wav"
        sf.write(good, _sine(440, 0.5, 16_000), 16_000)
        path = tmp_path / "truncated.wav"
        path.write_bytes(good.read_bytes()[:30])
    elif kind == "text_renamed":
        path = tmp_path / "notes.wav"
        path.write_text("These are my notes, not a recording.\n" * 10)
    elif kind == "empty":
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
    elif kind == "missing":
        path = tmp_path / "missing.wav"
    elif kind == "zero_frames":
        path = tmp_path / "zero.wav"
        sf.write(path, np.zeros(0, dtype=np.float32), 16_000)
    elif kind == "silent":
        path = tmp_path / "silent.wav"
        sf.write(path, np.zeros(16_000, dtype=np.float32), 16_000)
    elif kind == "nan":
        path = tmp_path / "nan.wav"
        audio = _sine(440, 0.5, 16_000)
        audio[100] = np.nan
        sf.write(path, audio, 16_000, subtype="FLOAT")
    elif kind == "too_long":
        path = tmp_path / "long.flac"
        sf.write(path, _sine(440, 12.0, 8_000), 8_000)
    return path


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("random_bytes", "not an audio file we can read (wav, flac, ogg, mp3, aiff)"),
        ("truncated_header", "not an audio file we can read"),
        ("text_renamed", "not an audio file we can read"),
        ("empty", "file is empty"),
        ("missing", "file not found"),
        ("zero_frames", "holds no audio"),
        ("silent", "audio is silent"),
        ("nan", "NaN"),
        ("too_long", "too long"),
    ],
)
def test_decode_validate_rejects_unusable_files_with_a_plain_message(tmp_path, kind, phrase):
    path = _write_bad_file(tmp_path, kind)
    with pytest.raises(AudioDecodeError) as caught:
        decode_validate(path, max_duration_s=10)
    message = str(caught.value)
    assert phrase in message
    assert path.name in message


def test_quiet_but_not_silent_audio_is_accepted(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, _sine(440, 1.0, 16_000, amplitude=10 ** (-60 / 20)), 16_000, subtype="FLOAT")
    _, audio = decode_validate(path, max_duration_s=None)
    assert np.abs(audio).max() > 0


def test_web_side_modules_do_not_import_torch():
    code = "import sys, ml.audio, ml.backbones; assert 'torch' not in sys.modules, 'torch was imported'"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr


# --- windows -------------------------------------------------------------------------------------------


def test_paper_window_sizes():
    assert (WINDOW_ELECTRONIC, WINDOW_POP) == (100_000, 200_000)


def test_short_audio_gets_one_zero_padded_window():
    audio = np.arange(1, 1001, dtype=np.float32)
    windows = split_windows(audio, window_samples=4000)
    assert windows.shape == (1, 4000)
    np.testing.assert_array_equal(windows[0, :1000], audio)
    assert not windows[0, 1000:].any()


def test_windows_use_half_window_hop_and_hold_the_audio():
    audio = np.arange(10_000, dtype=np.float32)
    windows = split_windows(audio, window_samples=4000)
    # Starts 0, 2000, 4000, 6000 cover everything exactly; no tail is left.
    np.testing.assert_array_equal(window_starts(10_000, window_samples=4000), [0, 2000, 4000, 6000])
    for row, start in zip(windows, [0, 2000, 4000, 6000], strict=True):
        np.testing.assert_array_equal(row, audio[start : start + 4000])


def test_tail_policy_adds_an_end_aligned_window_only_for_long_tails():
    # Tail of 1500 (>= a quarter window) uncovered after the last regular start: add one aligned to the end.
    np.testing.assert_array_equal(
        window_starts(9_500, window_samples=4000, hop_samples=4000), [0, 4000, 5500]
    )
    # Tail of 500 (< a quarter window): dropped.
    np.testing.assert_array_equal(window_starts(8_500, window_samples=4000, hop_samples=4000), [0, 4000])
    windows = split_windows(np.arange(9_500, dtype=np.float32), window_samples=4000, hop_samples=4000)
    assert windows.shape == (3, 4000) and windows[-1, -1] == 9_499


def test_split_windows_rejects_bad_input():
    with pytest.raises(ValueError):
        split_windows(np.zeros((2, 100), dtype=np.float32), window_samples=10)
    with pytest.raises(ValueError):
        split_windows(np.zeros(0, dtype=np.float32), window_samples=10)


# --- pitch shifting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("semitones", [-6, -5, -3, -1, 1, 2, 4, 6])
def test_pitch_shift_lands_within_ten_cents_and_keeps_the_length(semitones):
    sample_rate = 16_000
    target = 440 * 2 ** (semitones / 12)

    sine = _sine(440, 2.0, sample_rate)
    shifted = pitch_shift(sine, semitones, sample_rate=sample_rate)
    assert shifted.shape == sine.shape and shifted.dtype == np.float32
    assert abs(_cents(_peak_hz(shifted, sample_rate), target)) < 10

    harmonic = _harmonic(440, 2.0, sample_rate)
    shifted = pitch_shift(harmonic, semitones, sample_rate=sample_rate)
    assert shifted.shape == harmonic.shape
    # The fundamental and the third partial both move by the same interval.
    assert abs(_cents(_peak_hz(shifted, sample_rate, 0.9 * target, 1.1 * target), target)) < 10
    assert abs(_cents(_peak_hz(shifted, sample_rate, 2.7 * target, 3.3 * target), 3 * target)) < 10


def test_pitch_shift_keeps_level_and_zero_is_identity():
    sine = _sine(440, 2.0, 16_000)
    shifted = pitch_shift(sine, 3)
    steady = shifted[4000:-4000]
    assert np.abs(steady).max() == pytest.approx(0.5, abs=0.03)
    np.testing.assert_array_equal(pitch_shift(sine, 0), sine)
