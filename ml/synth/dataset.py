"""Writing labelled data sets of synthetic tracks, and `python -m ml synth`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.files import write_atomic
from ml.keys import ALL_KEYS, Key
from ml.synth.render import render
from ml.synth.spec import AUDIO_FORMATS, TIMBRES, TrackSpec, random_spec


# --- data sets and the command line -----------------------------------------------------------------------
@dataclass(frozen=True)
class SynthTrack:
    """A rendered file and the spec that re-renders it."""

    path: Path
    spec: TrackSpec


def _spread_keys(n_tracks: int, keys: Sequence[Key], seed: int) -> list[Key]:
    """Every key equally often: whole shuffled rounds through `keys`, then part of one more."""
    rng = np.random.default_rng([seed, 24])
    plan: list[Key] = []
    while len(plan) < n_tracks:
        plan.extend(keys[int(i)] for i in rng.permutation(len(keys)))
    return plan[:n_tracks]


def _file_key(key: Key) -> str:
    # '#' would start a URL fragment when the file is served, so spell it out.
    return key.mir_eval.replace("#", "sharp").replace(" ", "-")


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write in the format named by the file's suffix (wav, flac, ogg or mp3), atomically."""
    import soundfile as sf

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in AUDIO_FORMATS:
        raise ValueError(f"cannot write {path.name}: use one of {', '.join(AUDIO_FORMATS)}")
    container, subtype = AUDIO_FORMATS[fmt]
    write_atomic(
        path, lambda partial: sf.write(partial, audio, sample_rate, format=container, subtype=subtype)
    )


def generate_dataset(
    out_dir: Path,
    *,
    n_tracks: int,
    seed: int,
    sample_rate: int = 22050,
    duration_range: tuple[float, float] = (15.0, 90.0),
    difficulty: float = 0.0,
    formats: Sequence[str] = ("wav",),
    keys: Sequence[Key] | None = None,
    timbres: Sequence[str] | None = None,
    progress: bool = False,
) -> list[SynthTrack]:
    """Render `n_tracks` into `out_dir` with labels.csv (path,key in mir_eval notation) and specs.jsonl."""
    unknown = [fmt for fmt in formats if fmt not in AUDIO_FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown audio format(s) {unknown or formats}; use {', '.join(AUDIO_FORMATS)}")
    unknown = [timbre for timbre in timbres or () if timbre not in TIMBRES]
    if unknown:
        raise ValueError(f"unknown timbre(s) {', '.join(unknown)}; use {', '.join(TIMBRES)}")
    if n_tracks < 0:
        raise ValueError(f"n_tracks must be zero or more, got {n_tracks}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _spread_keys(n_tracks, list(keys) if keys else list(ALL_KEYS), seed)
    indices: Sequence[int] = range(n_tracks)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="track")
    tracks = []
    for i in indices:
        track_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        spec = random_spec(
            seed=track_seed,
            key=plan[i],
            duration_range=duration_range,
            difficulty=difficulty,
            timbres=timbres,
        )
        path = out_dir / f"synth_{i:04d}_{_file_key(spec.key)}.{formats[i % len(formats)]}"
        write_audio(path, render(spec, sample_rate=sample_rate), sample_rate)
        tracks.append(SynthTrack(path=path, spec=spec))

    def write_labels(partial: Path) -> None:
        with partial.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "key"])
            writer.writerows([track.path.name, track.spec.key.mir_eval] for track in tracks)

    def write_specs(partial: Path) -> None:
        lines = [json.dumps({"path": track.path.name, **track.spec.to_dict()}) for track in tracks]
        partial.write_text("".join(line + "\n" for line in lines))

    write_atomic(out_dir / "labels.csv", write_labels)
    write_atomic(out_dir / "specs.jsonl", write_specs)
    return tracks


def main(argv: list[str] | None = None) -> int:
    """`python -m ml synth`: write a synthetic labelled data set."""
    parser = argparse.ArgumentParser(
        prog="python -m ml synth",
        description="Write a synthetic labelled data set: audio files, labels.csv and specs.jsonl.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="directory for audio, labels.csv, specs.jsonl"
    )
    parser.add_argument("--n", type=int, default=24, help="number of tracks (keys are spread evenly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-duration", type=float, default=15.0, help="seconds")
    parser.add_argument("--max-duration", type=float, default=90.0, help="seconds")
    parser.add_argument("--difficulty", type=float, default=0.0, help="0 clean … 1 noisy and ambiguous")
    parser.add_argument(
        "--formats", default="wav", help=f"comma-separated, cycled: {','.join(AUDIO_FORMATS)}"
    )
    parser.add_argument("--timbres", default="", help=f"comma-separated subset of {','.join(TIMBRES)}")
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        tracks = generate_dataset(
            args.out,
            n_tracks=args.n,
            seed=args.seed,
            sample_rate=args.sample_rate,
            duration_range=(args.min_duration, args.max_duration),
            difficulty=args.difficulty,
            formats=[fmt.strip().lower() for fmt in args.formats.split(",") if fmt.strip()],
            timbres=[timbre.strip() for timbre in args.timbres.split(",") if timbre.strip()] or None,
            progress=not args.quiet,
        )
    except ValueError as error:
        print(f"synth: {error}", file=sys.stderr)
        return 2
    audio_s = sum(track.spec.duration_s for track in tracks)
    elapsed = time.perf_counter() - started
    print(f"wrote {len(tracks)} tracks ({audio_s:.0f} s of audio) to {args.out} in {elapsed:.1f} s")
    return 0
