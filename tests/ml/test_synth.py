"""The synthetic music generator: determinism, spec fields, audible key, data sets and the command line."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml import synth
from ml.keys import ALL_KEYS, Key, Mode
from ml.synth import TIMBRES, TrackSpec, compose, generate_dataset, random_spec, render
from ml.synth.harmony import SCALES

SR = 22050
# Krumhansl–Kessler probe-tone profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def chroma(audio: np.ndarray, tuning_cents: float = 0.0, sample_rate: int = SR) -> np.ndarray:
    """Pitch-class energy from long FFT frames (fine enough to separate semitones down to 50 Hz)."""
    frame = 16384
    window = np.hanning(frame)
    starts = range(0, len(audio) - frame + 1, frame // 2)
    magnitude = np.abs(np.fft.rfft(np.stack([audio[s : s + frame] * window for s in starts]), axis=1)).sum(0)
    freqs = np.fft.rfftfreq(frame, 1 / sample_rate)
    band = (freqs >= 50) & (freqs <= 1000)
    pitch_class = (np.round(12 * np.log2(freqs[band] / 440) - tuning_cents / 100).astype(int) + 9) % 12
    return np.bincount(pitch_class, weights=magnitude[band], minlength=12)


def best_key(profile: np.ndarray) -> Key:
    def fit(key: Key) -> float:
        template = np.roll(KK_MAJOR if key.mode == Mode.MAJOR else KK_MINOR, key.tonic)
        return float(np.corrcoef(profile, template)[0, 1])

    return max(ALL_KEYS, key=fit)


def spec_for(key: str, **changes: object) -> TrackSpec:
    base = TrackSpec(
        key=Key.parse(key),
        tempo_bpm=100.0,
        duration_s=6.0,
        timbre="organ",
        drums=False,
        tuning_cents=0.0,
        progression="I-IV-V-I" if Key.parse(key).mode == Mode.MAJOR else "i-iv-V-i",
        difficulty=0.0,
        seed=3,
    )
    return dataclasses.replace(base, **changes)


# --- determinism and the spec -------------------------------------------------------------------------------
def test_same_seed_gives_bit_identical_audio_and_another_seed_differs():
    spec = random_spec(seed=11, duration_range=(3.0, 3.0), difficulty=0.7)
    first, again = render(spec), render(spec)
    assert first.tobytes() == again.tobytes()
    assert random_spec(seed=11, duration_range=(3.0, 3.0), difficulty=0.7) == spec
    other = render(dataclasses.replace(spec, seed=12))
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("sample_rate", [16000, 22050])
def test_length_is_the_spec_duration(sample_rate):
    audio = render(spec_for("D major", duration_s=3.3), sample_rate=sample_rate)
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert len(audio) == round(3.3 * sample_rate)


def test_random_spec_honours_its_arguments():
    key = Key.parse("F# minor")
    for seed in range(20):
        spec = random_spec(seed=seed, key=key, duration_range=(4.0, 9.0), timbres=["bell", "pad"])
        assert spec.key == key and 4.0 <= spec.duration_s <= 9.0 and spec.timbre in ("bell", "pad")
        assert 70 <= spec.tempo_bpm <= 160 and abs(spec.tuning_cents) <= 30
        assert spec.progression in synth.PROGRESSIONS[Mode.MINOR]
    assert {random_spec(seed=seed).key for seed in range(200)} == set(ALL_KEYS)


@pytest.mark.parametrize("cents", [25.0, -20.0, 0.0])
def test_tuning_offset_shifts_every_strong_partial(cents):
    audio = render(spec_for("C major", tuning_cents=cents)).astype(np.float64)
    n_fft = 1 << 18
    spectrum = np.log(np.abs(np.fft.rfft(audio * np.hanning(len(audio)), n_fft)) + 1e-12)
    is_peak = (spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] >= spectrum[2:])
    peaks = np.flatnonzero(is_peak) + 1
    peaks = peaks[peaks * SR / n_fft > 200]  # bass notes are too few cycles long for cent precision
    strongest = peaks[np.argsort(spectrum[peaks])[-10:]]
    # Parabolic interpolation of the log spectrum finds each peak between bins.
    left, centre, right = spectrum[strongest - 1], spectrum[strongest], spectrum[strongest + 1]
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    freqs = (strongest + offset) * SR / n_fft
    deviation = (1200 * np.log2(freqs / 440) + 50) % 100 - 50
    assert np.median(deviation) == pytest.approx(cents, abs=3)
    assert np.mean(np.abs(deviation - cents) < 8) >= 0.8


# --- the key is audible ---------------------------------------------------------------------------------------
def _detected(difficulty: float) -> list[tuple[Key, Key]]:
    pairs = []
    for i, key in enumerate(ALL_KEYS[::2]):  # 6 major and 6 minor keys on 12 different tonics
        spec = random_spec(seed=500 + i, key=key, duration_range=(10.0, 10.0), difficulty=difficulty)
        pairs.append((key, best_key(chroma(render(spec), spec.tuning_cents))))
    return pairs


def test_clean_tracks_sound_in_their_key_and_difficulty_confuses_a_key_finder():
    clean = _detected(0.0)
    # A template key-finder on harmonic-rich audio mistakes some clean tracks for their dominant key.
    assert sum(found == key for key, found in clean) >= 9, clean
    hard = _detected(1.0)
    assert sum(found == key for key, found in hard) < sum(found == key for key, found in clean), hard


@pytest.mark.parametrize("timbre", TIMBRES)
def test_every_timbre_keeps_energy_in_the_key_and_on_its_tonic_triad(timbre):
    for name, triad in (("C major", (0, 4, 7)), ("A minor", (9, 0, 4))):
        key = Key.parse(name)
        spec = dataclasses.replace(random_spec(seed=1, key=key, duration_range=(6.0, 6.0)), timbre=timbre)
        profile = chroma(render(spec), spec.tuning_cents)
        profile /= profile.sum()
        steps = SCALES[key.mode] + ((9, 11) if key.mode == Mode.MINOR else ())
        outside = [pc for pc in range(12) if (pc - key.tonic) % 12 not in steps]
        # By chance the outside pitch classes would hold 5/12 (major) or 3/12 (minor) of the energy.
        assert profile[outside].sum() < 0.3, (name, np.round(profile, 3))
        assert profile[list(triad)].sum() > 0.3, (name, np.round(profile, 3))


def test_score_ends_on_the_tonic_and_minor_keys_use_the_leading_tone():
    for seed in range(12):
        key = ALL_KEYS[seed * 2]
        score = compose(random_spec(seed=seed, key=key, duration_range=(10.0, 20.0)))
        assert score.harmony[-1].chord.root == 0
        assert score.melody[-1].pitch % 12 == key.tonic
        assert score.bass[-1].pitch % 12 == key.tonic
        scale = {(key.tonic + step) % 12 for step in SCALES[key.mode]}
        if key.mode == Mode.MINOR:
            scale |= {(key.tonic + 9) % 12, (key.tonic + 11) % 12}  # melodic and harmonic minor
            played = {note.pitch % 12 for note in score.comping + score.melody}
            assert (key.tonic + 11) % 12 in played
        assert all(note.pitch % 12 in scale for note in score.melody)


def test_roman_numerals_follow_the_mode():
    assert synth.parse_chord("V", Mode.MINOR).tones == {7, 11, 2}
    assert synth.parse_chord("VII", Mode.MINOR).tones == {10, 2, 5}
    assert synth.parse_chord("bVII", Mode.MAJOR).root == 10
    assert synth.parse_chord("ii°", Mode.MINOR).tones == {2, 5, 8}
    with pytest.raises(ValueError, match="roman-numeral"):
        synth.parse_chord("H7", Mode.MAJOR)
    with pytest.raises(ValueError):
        spec_for("C major", progression="I-X-V")
    with pytest.raises(ValueError, match="timbre"):
        spec_for("C major", timbre="kazoo")


# --- safe output ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("timbre", TIMBRES)
def test_every_timbre_at_full_difficulty_is_finite_and_unclipped(timbre):
    spec = dataclasses.replace(
        random_spec(seed=7, duration_range=(3.0, 3.0), difficulty=1.0), timbre=timbre, drums=True
    )
    audio = render(spec)
    assert np.all(np.isfinite(audio))
    assert 0.85 < np.max(np.abs(audio)) <= 0.9  # -1 dBFS
    assert np.std(audio[: len(audio) // 2]) > 0.01  # not silent


def test_import_keeps_torch_out_of_the_web_process():
    code = "import sys, ml.synth; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# --- data sets and the command line ---------------------------------------------------------------------------
def test_dataset_writes_every_format_with_labels_and_specs(tmp_path):
    formats = ("wav", "flac", "ogg", "mp3")
    tracks = generate_dataset(tmp_path, n_tracks=4, seed=5, duration_range=(2.0, 2.5), formats=formats)
    assert [track.path.suffix for track in tracks] == [".wav", ".flac", ".ogg", ".mp3"]
    for track in tracks:
        audio, sample_rate = sf.read(track.path)
        assert sample_rate == SR and audio.ndim == 1
        assert abs(len(audio) / SR - track.spec.duration_s) < 0.1
        assert np.max(np.abs(audio)) > 0.5
    wav, _ = sf.read(tracks[0].path, dtype="float32")
    np.testing.assert_allclose(wav, render(tracks[0].spec), atol=1 / 32768)  # the spec re-renders the file
    with (tmp_path / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [track.path.name for track in tracks]
    assert [Key.parse(row["key"]) for row in rows] == [track.spec.key for track in tracks]
    lines = (tmp_path / "specs.jsonl").read_text().splitlines()
    assert [TrackSpec.from_dict(json.loads(line)) for line in lines] == [track.spec for track in tracks]
    assert not list(tmp_path.glob(".*partial*"))


def test_dataset_spreads_keys_evenly(tmp_path):
    tracks = generate_dataset(tmp_path / "all", n_tracks=24, seed=1, duration_range=(0.5, 0.5))
    assert sorted(track.spec.key for track in tracks) == sorted(ALL_KEYS)
    chosen = [Key.parse("C major"), Key.parse("A minor"), Key.parse("F# major")]
    tracks = generate_dataset(tmp_path / "some", n_tracks=7, seed=1, duration_range=(0.5, 0.5), keys=chosen)
    assert sorted(Counter(track.spec.key for track in tracks).values()) == [2, 2, 3]
    assert any(track.path.name.endswith("_Fsharp-major.wav") for track in tracks)


def test_main_writes_a_dataset_and_reports_bad_arguments(tmp_path, capsys):
    out = tmp_path / "set"
    argv = [
        "--out",
        str(out),
        "--n",
        "2",
        "--min-duration",
        "1",
        "--max-duration",
        "1.5",
        "--formats",
        "flac",
    ]
    assert synth.main([*argv, "--quiet", "--difficulty", "0.5"]) == 0
    assert len(list(out.glob("*.flac"))) == 2
    assert "wrote 2 tracks" in capsys.readouterr().out
    assert synth.main(["--out", str(out), "--n", "1", "--formats", "aiff", "--quiet"]) == 2
    assert "aiff" in capsys.readouterr().err
