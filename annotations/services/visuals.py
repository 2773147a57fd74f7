"""What the label page draws: waveform peaks and a chromagram, computed with numpy (no torch) and stored as
JSON beside the audio. Short tracks are drawn in the request, long ones by a task (dispatch.visuals_start)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache

from ml.audio import SAMPLE_RATE, load_audio
from ml.files import json_write_atomic

from .. import dispatch
from ..models import Track
from ..selectors import (
    VISUALS_VERSION,
    track_visuals_path,
    visuals_building_key,
    visuals_failure_key,
)

logger = logging.getLogger(__name__)

WAVEFORM_POINTS = 800
CHROMA_FRAMES_PER_SECOND = 4
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# 8192 samples at 16 kHz resolve 2 Hz, enough to separate semitones down to ~35 Hz.
_N_FFT = 8192
_LOW_HZ, _HIGH_HZ = 55.0, 4200.0
# How far (in semitones) a bin's energy spreads to the nearest pitch; narrow keeps the rows crisp.
_PITCH_SPREAD = 0.25
_FRAMES_PER_BLOCK = 256


def _waveform_peaks(audio: np.ndarray, n_points: int) -> dict:
    """Min and max of each of `n_points` equal slices, scaled so the loudest sample is ±1."""
    n_points = max(1, min(n_points, audio.size))
    usable = audio[: audio.size - audio.size % n_points] if audio.size >= n_points else audio
    slices = usable.reshape(n_points, -1)
    peak = float(np.abs(audio).max()) or 1.0
    return {
        "min": np.round(slices.min(axis=1).astype(np.float64) / peak, 3).tolist(),
        "max": np.round(slices.max(axis=1).astype(np.float64) / peak, 3).tolist(),
    }


def _pitch_class_weights(sample_rate: int, tuning_cents: float) -> tuple[np.ndarray, slice]:
    """(12, n_bins) weights folding FFT bins between _LOW_HZ and _HIGH_HZ onto pitch classes, with each
    bin counted towards the nearest equal-tempered pitch of a reference shifted by `tuning_cents`."""
    frequencies = np.fft.rfftfreq(_N_FFT, 1.0 / sample_rate)
    band = slice(int(np.searchsorted(frequencies, _LOW_HZ)), int(np.searchsorted(frequencies, _HIGH_HZ)))
    reference_a4 = 440.0 * 2.0 ** (tuning_cents / 1200.0)
    midi = 69.0 + 12.0 * np.log2(frequencies[band] / reference_a4)
    nearest = np.round(midi)
    closeness = np.exp(-0.5 * ((midi - nearest) / _PITCH_SPREAD) ** 2)
    weights = np.zeros((12, midi.size), dtype=np.float32)
    weights[nearest.astype(np.int64) % 12, np.arange(midi.size)] = closeness
    return weights, band


def _chromagram(audio: np.ndarray, sample_rate: int, tuning_cents: float) -> np.ndarray:
    """(frames, 12) pitch-class energy at CHROMA_FRAMES_PER_SECOND, each frame scaled to 0–1; quiet
    frames are scaled down with the track's loud frames as the reference, so silence stays dark."""
    hop = max(1, sample_rate // CHROMA_FRAMES_PER_SECOND)
    n_frames = max(1, int(np.ceil(audio.size / hop)))
    padded = np.zeros(n_frames * hop + _N_FFT, dtype=np.float32)
    padded[_N_FFT // 2 : _N_FFT // 2 + audio.size] = audio
    window = np.hanning(_N_FFT).astype(np.float32)
    weights, band = _pitch_class_weights(sample_rate, tuning_cents)
    chroma = np.empty((n_frames, 12), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::hop][:n_frames]
    for start in range(0, n_frames, _FRAMES_PER_BLOCK):
        block = frames[start : start + _FRAMES_PER_BLOCK] * window
        magnitude = np.abs(np.fft.rfft(block, axis=1))[:, band]
        # Linear magnitude: log compression lifts the noise floor and washes out the scale's notes.
        chroma[start : start + len(block)] = magnitude @ weights.T
    loudness = chroma.max(axis=1)
    reference = float(np.percentile(loudness, 90)) or 1.0
    level = np.clip(loudness / reference, 0.0, 1.0)
    normalised = chroma / np.maximum(loudness, 1e-9)[:, None] * level[:, None]
    return np.clip(normalised, 0.0, 1.0)


def track_visuals_compute(*, track: Track, audio: np.ndarray, sample_rate: int = 16000) -> dict:
    """Waveform peaks (~800 points) and a 12-row chromagram (~4 frames/s) of mono audio, as JSON-ready
    lists. The chromagram is tuning-compensated with Track.tuning_cents when it is known."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    if audio.size == 0:
        raise ValueError(f"track {track.pk}: no audio samples to draw")
    tuning = float(track.tuning_cents) if track.tuning_cents is not None else 0.0
    chroma = _chromagram(audio, sample_rate, tuning)
    return {
        "version": VISUALS_VERSION,
        "track": track.pk,
        "duration_s": round(audio.size / sample_rate, 3),
        "tuning_cents": track.tuning_cents,
        "peaks": _waveform_peaks(audio, WAVEFORM_POINTS),
        "chroma": {
            "frames_per_second": sample_rate / max(1, sample_rate // CHROMA_FRAMES_PER_SECOND),
            "pitch_classes": list(PITCH_CLASS_NAMES),
            "values": np.round(chroma.astype(np.float64), 2).tolist(),
        },
    }


def track_visuals_write(*, track: Track, visuals: dict) -> Path:
    """Store the visuals atomically: readers never see half a file."""
    path = track_visuals_path(track)
    json_write_atomic(path, visuals, indent=None)
    return path


def track_visuals_build(*, track: Track) -> dict:
    """Decode the track's audio, compute its visuals and store them (worker pipeline or first page view)."""
    audio = load_audio(Path(settings.MEDIA_ROOT) / track.audio.name, sample_rate=SAMPLE_RATE)
    visuals = track_visuals_compute(track=track, audio=audio, sample_rate=SAMPLE_RATE)
    track_visuals_write(track=track, visuals=visuals)
    return visuals


# Long tracks are drawn by a Celery task, never in the web process; the shared cache (Redis) remembers
# that one is queued, so a polling page doesn't queue it twice, and why a build failed.
BUILD_MARK_SECONDS = 300
FAILURE_SECONDS = 600


def track_visuals_build_in_background(track: Track) -> bool:
    """Queue the worker task that draws a long track's visuals; False if one is already queued."""
    if not cache.add(visuals_building_key(track.pk), 1, BUILD_MARK_SECONDS):
        return False
    cache.delete(visuals_failure_key(track.pk))
    dispatch.visuals_start(track_id=track.pk)
    return True


def track_visuals_build_recorded(*, track: Track) -> None:
    """Worker side of track_visuals_build_in_background: build, remember a failure, clear the mark."""
    try:
        track_visuals_build(track=track)
    except Exception as error:
        logger.exception("computing the visuals of track %s failed", track.pk)
        cache.set(visuals_failure_key(track.pk), str(error), FAILURE_SECONDS)
    finally:
        cache.delete(visuals_building_key(track.pk))
