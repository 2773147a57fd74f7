"""Audio decoding, upload validation, analysis windows and pitch shifting (numpy only: no torch here)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
# Window lengths of the KeyMyna paper, in samples at 16 kHz: 6.25 s and 12.5 s.
WINDOW_ELECTRONIC = 100_000
WINDOW_POP = 200_000
# Peak below -80 dBFS counts as digital silence: dither and codec noise sit above it, real music far above.
SILENCE_PEAK = 10 ** (-80 / 20)
READABLE_FORMATS = "wav, flac, ogg, mp3, aiff"
# Slack on the length limit: encoders pad the start and end, and headers round the length.
_DURATION_SLACK_S = 1.0


class AudioDecodeError(ValueError):
    """An audio file we cannot use; the message names the file, what was wrong and what to do."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    format: str


def _unreadable(path: str | os.PathLike[str], detail: str) -> AudioDecodeError:
    return AudioDecodeError(
        f"{os.fspath(path)}: not an audio file we can read ({READABLE_FORMATS}); {detail}. "
        "Export the track to one of these formats and upload it again."
    )


def _check_file(path: str | os.PathLike[str]) -> None:
    if not os.path.isfile(path):
        raise AudioDecodeError(f"{os.fspath(path)}: file not found; check the path.")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(f"{os.fspath(path)}: file is empty (0 bytes); upload the file again.")


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Duration, rate, channels and format from the file header alone (no decoding)."""
    _check_file(path)
    try:
        info = sf.info(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise _unreadable(path, f"the decoder said: {error}") from error
    return AudioInfo(
        duration_s=info.frames / info.samplerate if info.samplerate else 0.0,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
    )


def _decode_mono(path: str | os.PathLike[str], *, max_frames: int | None) -> tuple[np.ndarray, int]:
    try:
        with sf.SoundFile(os.fspath(path)) as audio_file:
            frames = -1 if max_frames is None else max_frames
            data = audio_file.read(frames=frames, dtype="float32", always_2d=True)
            native_rate = int(audio_file.samplerate)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise _unreadable(path, f"the decoder said: {error}") from error
    # A mono file needs no mixing (averaging a single column still costs ~2 ms per minute).
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return mono, native_rate


def resample(audio: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality (soxr HQ) resampling of mono float32 audio."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if from_rate == to_rate or audio.size == 0:
        return audio
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    path: str | os.PathLike[str], *, sample_rate: int = SAMPLE_RATE, max_duration_s: float | None = None
) -> np.ndarray:
    """Mono float32 audio at `sample_rate`; with `max_duration_s`, only the beginning up to that length."""
    _check_file(path)
    max_frames = None
    if max_duration_s is not None:
        max_frames = int(np.ceil(max_duration_s * probe(path).sample_rate))
    mono, native_rate = _decode_mono(path, max_frames=max_frames)
    return resample(mono, from_rate=native_rate, to_rate=sample_rate)


def decode_validate(
    path: str | os.PathLike[str], *, max_duration_s: float | None
) -> tuple[AudioInfo, np.ndarray]:
    """Decode once and check the audio is usable; returns the header info and mono 16 kHz audio.

    Raises AudioDecodeError for unreadable or non-audio files, empty or zero-length audio, NaN/inf
    samples, digital silence and (when `max_duration_s` is given) audio longer than allowed.
    """
    header = probe(path)
    name = os.fspath(path)
    limit_s = None if max_duration_s is None else max_duration_s + _DURATION_SLACK_S
    # The header is checked first so an over-long upload is refused before it is decoded.
    if limit_s is not None and header.duration_s > limit_s:
        raise _too_long(name, header.duration_s, max_duration_s)
    max_frames = None if limit_s is None else int(limit_s * header.sample_rate) + 1
    mono, native_rate = _decode_mono(path, max_frames=max_frames)
    if mono.size == 0:
        raise AudioDecodeError(f"{name}: the file holds no audio (0 frames); export the track again.")
    duration_s = mono.size / native_rate
    # Compressed formats can under-report their length in the header.
    if limit_s is not None and duration_s > limit_s:
        raise _too_long(name, None, max_duration_s)
    if not np.isfinite(mono).all():
        raise AudioDecodeError(f"{name}: the audio holds invalid samples (NaN or infinity); export it again.")
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        raise AudioDecodeError(
            f"{name}: audio is silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
            "check that the right file was exported."
        )
    info = AudioInfo(
        duration_s=duration_s,
        sample_rate=native_rate,
        channels=header.channels,
        frames=int(mono.size),
        format=header.format,
    )
    return info, resample(mono, from_rate=native_rate, to_rate=SAMPLE_RATE)


def _too_long(name: str, duration_s: float | None, max_duration_s: float) -> AudioDecodeError:
    length = "" if duration_s is None else f"{_minutes(duration_s)}; "
    return AudioDecodeError(
        f"{name}: audio is too long ({length}the limit is {_minutes(max_duration_s)}); "
        "trim the track and upload it again."
    )


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# --- analysis windows ----------------------------------------------------------------------------------


def window_starts(n_samples: int, *, window_samples: int, hop_samples: int | None = None) -> np.ndarray:
    """Start sample of every analysis window over `n_samples` samples.

    Policy: windows start every `hop_samples` (default half a window) while they fit. When the part
    left uncovered at the end is at least a quarter of a window, one more window aligned to the end
    is added; shorter tails (usually a fade-out) are dropped. Audio shorter than one window gets
    a single window starting at 0 (`split_windows` zero-pads it), so every track gets a prediction.
    """
    if window_samples <= 0:
        raise ValueError(f"window_samples must be positive, got {window_samples}")
    hop = window_samples // 2 if hop_samples is None else hop_samples
    if hop <= 0:
        raise ValueError(f"hop_samples must be positive, got {hop_samples}")
    if n_samples <= window_samples:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - window_samples + 1, hop, dtype=np.int64)
    uncovered = n_samples - (starts[-1] + window_samples)
    if uncovered >= window_samples // 4:
        starts = np.append(starts, n_samples - window_samples)
    return starts


def split_windows(audio: np.ndarray, *, window_samples: int, hop_samples: int | None = None) -> np.ndarray:
    """Windows of shape (n_windows, window_samples) following the policy of `window_starts`."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("cannot window empty audio")
    if audio.size < window_samples:
        padded = np.zeros((1, window_samples), dtype=np.float32)
        padded[0, : audio.size] = audio
        return padded
    starts = window_starts(audio.size, window_samples=window_samples, hop_samples=hop_samples)
    return np.stack([audio[start : start + window_samples] for start in starts])


# --- pitch shifting ------------------------------------------------------------------------------------

_PV_FFT = 2048
_PV_OVERLAP = 4
_PV_HOP = _PV_FFT // _PV_OVERLAP
_TWO_PI = 2 * np.pi


def _stft(audio: np.ndarray, window: np.ndarray) -> np.ndarray:
    padded = np.pad(audio, (_PV_FFT // 2, _PV_FFT // 2 + _PV_HOP))
    n_frames = 1 + (padded.size - _PV_FFT) // _PV_HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, _PV_FFT)[::_PV_HOP][:n_frames]
    return np.fft.rfft(frames * window, axis=1)


def _istft(spectrum: np.ndarray, window: np.ndarray) -> np.ndarray:
    frames = np.fft.irfft(spectrum, n=_PV_FFT, axis=1) * window
    n_frames = len(frames)
    # Overlap-add in hop-sized blocks: frame f's quarter q lands on output block f + q.
    blocks = np.zeros((n_frames + _PV_OVERLAP - 1, _PV_HOP), dtype=frames.dtype)
    norm = np.zeros_like(blocks)
    quarters = frames.reshape(n_frames, _PV_OVERLAP, _PV_HOP)
    window_quarters = (window**2).reshape(_PV_OVERLAP, _PV_HOP)
    for quarter in range(_PV_OVERLAP):
        blocks[quarter : quarter + n_frames] += quarters[:, quarter]
        norm[quarter : quarter + n_frames] += window_quarters[quarter]
    output = (blocks / np.maximum(norm, 1e-6)).reshape(-1)
    return output[_PV_FFT // 2 :]


def _time_stretch(audio: np.ndarray, factor: float) -> np.ndarray:
    """Phase-vocoder time stretch: `factor` > 1 makes the audio longer, pitch unchanged."""
    window = np.hanning(_PV_FFT + 1)[:-1].astype(np.float32)
    spectrum = _stft(audio.astype(np.float32), window)
    n_frames = len(spectrum)
    # Read the analysis frames at fractional positions; each output frame advances by 1/factor frames.
    positions = np.arange(0.0, n_frames - 1, 1.0 / factor)
    lower = positions.astype(np.int64)
    fraction = (positions - lower).astype(np.float32)[:, None]
    magnitude = np.abs(spectrum)
    stretched_magnitude = (1 - fraction) * magnitude[lower] + fraction * magnitude[lower + 1]
    # Synthesis hop = analysis hop, so a partial's phase advances per output frame by exactly the
    # phase difference it shows between the two analysis frames read (mod 2π: no unwrapping needed).
    phase = np.angle(spectrum)
    advance = phase[lower + 1] - phase[lower]
    # Accumulate in float64: the running phase grows with the track's length.
    accumulated = np.cumsum(np.concatenate([phase[:1], advance[:-1]]), axis=0, dtype=np.float64)
    accumulated = np.mod(accumulated, _TWO_PI).astype(np.float32)
    # Identity phase locking: each bin keeps its analysis phase relative to the peak it belongs to,
    # so the partials of one note stay coherent across bins (less "phasiness" than a plain vocoder).
    peak_bin = _nearest_peak(stretched_magnitude)
    rows = np.arange(len(positions))[:, None]
    analysis_phase = phase[lower]
    locked = analysis_phase + (accumulated - analysis_phase)[rows, peak_bin]
    return _istft(stretched_magnitude * np.exp(1j * locked), window)


def _nearest_peak(magnitude: np.ndarray) -> np.ndarray:
    """For every (frame, bin), the index of the nearest spectral peak (a local maximum over ±2 bins)."""
    n_bins = magnitude.shape[1]
    padded = np.pad(magnitude, ((0, 0), (2, 2)), constant_values=-1.0)
    neighbours = np.stack([padded[:, offset : offset + n_bins] for offset in (0, 1, 3, 4)])
    is_peak = (magnitude >= neighbours).all(axis=0)
    is_peak[:, 0] |= ~is_peak.any(axis=1)
    bins = np.arange(n_bins)
    previous = np.maximum.accumulate(np.where(is_peak, bins, -1), axis=1)
    following = np.minimum.accumulate(np.where(is_peak, bins, n_bins)[:, ::-1], axis=1)[:, ::-1]
    previous_distance = np.where(previous >= 0, bins - previous, n_bins)
    following_distance = np.where(following < n_bins, following - bins, n_bins)
    return np.where(previous_distance <= following_distance, previous, following)


def pitch_shift(audio: np.ndarray, semitones: float, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The audio `semitones` higher (or lower), same length: time stretch by 2^(n/12), then resample."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    if semitones == 0 or audio.size == 0:
        return audio.copy()
    factor = 2.0 ** (semitones / 12)
    stretched = _time_stretch(audio, factor)
    # Playing the stretched audio `factor` times faster restores the duration and raises the pitch.
    shifted = soxr.resample(stretched, sample_rate * factor, sample_rate, quality="HQ")
    output = np.zeros(audio.size, dtype=np.float32)
    length = min(audio.size, shifted.size)
    output[:length] = shifted[:length]
    return output
