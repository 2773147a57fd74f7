"""Pretraining SKeyNet on a library's own audio: the S-KEY objective (no labels needed), plus
cross-entropy on whatever tracks do have keys (e.g. the synthetic generator's); resumable.

The network is transposition-equivariant by construction (ml.backbones.skey_net), so S-KEY's
equivariance terms hold exactly and what is left to learn is the rest of its objective:
- consistency: two disjoint excerpts A and B of a track must give the same key signature, compared on
  the circle of fifths (the CPSD term at k = 0), which also forces the prediction to be sharp;
- mode: the excerpts' major/minor split follows S-KEY's pseudo-label (is the predicted major tonic
  louder in the track's chroma than its relative minor's tonic?), and the batch stays near half/half.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ml.backbones.logcqt import BINS_PER_SEMITONE, FEATURE_VERSION, N_OCTAVES, LogCQT, band_signals
from ml.backbones.skey_net import SKeyConfig, SKeyNet, model_from_checkpoint, read_checkpoint, save_checkpoint
from ml.keys import Key

PRETRAIN_VERSION = 1
FIFTHS = 7  # the DFT bin of a 12-vector that lays pitch classes out on the circle of fifths


@dataclass(frozen=True)
class PretrainConfig:
    """How pretraining runs; stored in the checkpoint beside the network's SKeyConfig."""

    steps: int = 600
    batch_size: int = 16
    segment_seconds: float = 8.0
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    weight_mode: float = 1.5  # S-KEY's λ_BCE
    weight_balance: float = 15.0  # S-KEY's λ_avg
    weight_supervised: float = 1.0  # cross-entropy on tracks with a known key
    checkpoint_every: int = 50
    # ...or sooner, once this many seconds passed since the last one: a killed worker loses at most a
    # minute however slow its steps (a 2-core machine, a large batch); None: steps only.
    checkpoint_seconds: float | None = 60.0
    seed: int = 0


@dataclass
class PretrainTrack:
    """One track's log-CQT (bins, frames) as float16, and its key when one is known."""

    log_cqt: np.ndarray
    key: Key | None = None
    source: str = ""


@dataclass
class PretrainResult:
    checkpoint: Path
    steps_done: int
    resumed_from: int
    seconds: float
    losses: list[dict] = field(default_factory=list)


Progress = Callable[[int, int, dict], None]  # (step done, total steps, latest losses)


# --- data ----------------------------------------------------------------------------------------------------


def tracks_from_audio(
    audio_tracks: Sequence[tuple[np.ndarray, Key | None, str]], *, device: str = "cpu"
) -> list[PretrainTrack]:
    """Log-CQTs of (16 kHz mono audio, key or None, name) triples, computed once before training."""
    front_end = LogCQT().to(device).eval()
    tracks = []
    with torch.inference_mode():
        for audio, key, source in audio_tracks:
            signals = [torch.from_numpy(signal)[None].to(device) for signal in band_signals(audio)]
            log_cqt = front_end(signals)[0].cpu().numpy().astype(np.float16)
            tracks.append(PretrainTrack(log_cqt=log_cqt, key=key, source=source))
    return tracks


def _segment_pair(
    track: PretrainTrack, frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two excerpts of `frames` frames, disjoint when the track is long enough (zero-padded when short)."""
    total = track.log_cqt.shape[1]
    if total < frames:
        padded = np.zeros((track.log_cqt.shape[0], frames), dtype=np.float16)
        padded[:, :total] = track.log_cqt
        return padded, padded
    if total >= 2 * frames:
        first = int(rng.integers(0, total - 2 * frames + 1))
        second = int(rng.integers(first + frames, total - frames + 1))
        starts = [first, second] if rng.random() < 0.5 else [second, first]
    else:
        starts = [int(rng.integers(0, total - frames + 1)) for _ in range(2)]
    return tuple(track.log_cqt[:, start : start + frames] for start in starts)


def _batch(tracks: Sequence[PretrainTrack], indices: np.ndarray, frames: int, rng: np.random.Generator):
    pairs = [_segment_pair(tracks[int(i)], frames, rng) for i in indices]
    excerpts_a = torch.from_numpy(np.stack([a for a, _ in pairs]).astype(np.float32))
    excerpts_b = torch.from_numpy(np.stack([b for _, b in pairs]).astype(np.float32))
    labels = torch.tensor([tracks[int(i)].key.index if tracks[int(i)].key else -1 for i in indices])
    return excerpts_a, excerpts_b, labels


# --- the objective -----------------------------------------------------------------------------------------------


def key_signature(probabilities: torch.Tensor) -> torch.Tensor:
    """(batch, 24) key probabilities → (batch, 12) key-signature mass, indexed by the major tonic.

    A minor key on tonic t shares its signature with the major key on t + 3.
    """
    major, minor = probabilities[:, :12], probabilities[:, 12:]
    return major + torch.roll(minor, shifts=3, dims=1)


def _on_circle_of_fifths(signature: torch.Tensor) -> torch.Tensor:
    angles = -2 * math.pi * FIFTHS * torch.arange(12, device=signature.device) / 12
    return torch.complex(signature @ torch.cos(angles), signature @ torch.sin(angles))


def consistency_loss(signature_a: torch.Tensor, signature_b: torch.Tensor) -> torch.Tensor:
    """S-KEY's CPSD term at k = 0: ½|1 − ẑ_A ẑ_B*|², zero only for equal one-hot key signatures."""
    z_a, z_b = _on_circle_of_fifths(signature_a), _on_circle_of_fifths(signature_b)
    return 0.5 * (1 - z_a * torch.conj(z_b)).abs().pow(2).mean()


def mode_pseudo_labels(signature: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """1 (minor) where the relative minor's tonic is louder in the chroma than the predicted major tonic."""
    tonic = signature.argmax(dim=1)
    rows = torch.arange(len(tonic), device=chroma.device)
    return (chroma[rows, (tonic - 3) % 12] > chroma[rows, tonic]).long()


def chroma_of(excerpts: torch.Tensor) -> torch.Tensor:
    """(batch, bins, frames) log-CQT → (batch, 12) chroma: mean over time, sum over octaves and bins."""
    per_bin = excerpts.mean(dim=2)
    return per_bin.reshape(len(per_bin), N_OCTAVES, 12, BINS_PER_SEMITONE).sum(dim=(1, 3))


def pretraining_losses(
    model: SKeyNet,
    excerpts_a: torch.Tensor,
    excerpts_b: torch.Tensor,
    labels: torch.Tensor,
    config: PretrainConfig,
) -> dict[str, torch.Tensor]:
    """Every term of the objective for one batch; `total` is what is minimised."""
    logits = model.key_logits(torch.cat([excerpts_a, excerpts_b]))
    probabilities = logits.softmax(dim=1)
    half = len(excerpts_a)
    signature = key_signature(probabilities)
    consistency = consistency_loss(signature[:half], signature[half:])
    chroma = chroma_of(excerpts_a) + chroma_of(excerpts_b)
    pseudo = mode_pseudo_labels((signature[:half] + signature[half:]).detach(), chroma).repeat(2)
    mode_mass = torch.stack([probabilities[:, :12].sum(1), probabilities[:, 12:].sum(1)], dim=1)
    mode = F.nll_loss(torch.log(mode_mass.clamp_min(1e-7)), pseudo)
    balance = (mode_mass[:, 0].mean() - 0.5) ** 2
    known = labels.repeat(2) >= 0
    supervised = F.cross_entropy(logits[known], labels.repeat(2)[known]) if known.any() else logits.sum() * 0
    total = (
        consistency
        + config.weight_mode * mode
        + config.weight_balance * balance
        + config.weight_supervised * supervised
    )
    return {
        "total": total,
        "consistency": consistency,
        "mode": mode,
        "balance": balance,
        "supervised": supervised,
    }


# --- the loop ----------------------------------------------------------------------------------------------------


def _learning_rate(step: int, config: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth (as S-KEY)."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _frames_per_segment(config: PretrainConfig) -> int:
    from ml.backbones.logcqt import FRAME_SECONDS

    return max(8, round(config.segment_seconds / FRAME_SECONDS))


def _save(path: Path, model: SKeyNet, optimizer, config: PretrainConfig, step: int, losses, rng, order, data):
    complete = step >= config.steps
    save_checkpoint(
        path,
        model=model,
        extra={
            "pretraining": {
                "version": PRETRAIN_VERSION,
                "feature_version": FEATURE_VERSION,
                "config": dataclasses.asdict(config),
                "step": step,
                "complete": complete,
                "losses": losses[-200:],
                "data": data,
            },
            # Only an unfinished run keeps what resuming needs; a finished checkpoint is just the model.
            **(
                {}
                if complete
                else {
                    "optimizer": optimizer.state_dict(),
                    "rng": rng.bit_generator.state,
                    "order": list(order),
                }
            ),
        },
    )


def pretrain(
    tracks: Sequence[PretrainTrack],
    *,
    out: str | Path,
    config: PretrainConfig | None = None,
    model_config: SKeyConfig | None = None,
    device: str = "cpu",
    resume: bool = False,
    init_from: str | Path | None = None,
    progress: Progress | None = None,
    time_budget_s: float | None = None,
    data_description: dict | None = None,
) -> PretrainResult:
    """Train SKeyNet for `config.steps` steps and write a self-describing checkpoint to `out`.

    Every `config.checkpoint_every` steps or `config.checkpoint_seconds` seconds, whichever comes first (and
    at the end, or when `time_budget_s` runs out), the model, optimizer, step and random state are written
    atomically to `out`; with `resume=True` an unfinished checkpoint there is continued from its step, so
    a killed worker loses at most the steps since then. Saving changes nothing that is trained.
    `init_from` starts from another checkpoint's weights (e.g. fine-tuning the shipped one).
    `progress(step, steps, losses)` is called after every step.
    """
    if not tracks:
        raise ValueError("pretraining needs at least one track")
    config = config or PretrainConfig()
    out = Path(out)
    started = time.monotonic()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    step, losses, order = 0, [], []
    checkpoint = read_checkpoint(out) if resume and out.is_file() else None
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
        state = checkpoint.get("pretraining") or {}
        step = int(state.get("step", 0))
        losses = list(state.get("losses", []))
    elif init_from is not None:
        model = model_from_checkpoint(read_checkpoint(init_from))
    else:
        model = SKeyNet(config=model_config or SKeyConfig())
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    if checkpoint is not None and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.bit_generator.state = checkpoint["rng"]
        order = [int(i) for i in checkpoint.get("order", [])]
    resumed_from = step
    data = data_description or {"tracks": len(tracks), "labelled": sum(t.key is not None for t in tracks)}
    frames = _frames_per_segment(config)
    batch_size = min(config.batch_size, len(tracks))
    saved_at = time.monotonic()
    while step < config.steps:
        if len(order) < batch_size:
            order += rng.permutation(len(tracks)).tolist()
        indices, order = np.array(order[:batch_size]), order[batch_size:]
        excerpts_a, excerpts_b, labels = (
            tensor.to(device) for tensor in _batch(tracks, indices, frames, rng)
        )
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        terms = pretraining_losses(model, excerpts_a, excerpts_b, labels, config)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        step += 1
        losses.append(
            {"step": step, **{name: round(float(value.detach()), 5) for name, value in terms.items()}}
        )
        if progress:
            progress(step, config.steps, losses[-1])
        out_of_time = time_budget_s is not None and time.monotonic() - started > time_budget_s
        due = (
            config.checkpoint_seconds is not None and time.monotonic() - saved_at >= config.checkpoint_seconds
        )
        if step % config.checkpoint_every == 0 or due or step >= config.steps or out_of_time:
            model.eval()
            _save(out, model, optimizer, config, step, losses, rng, order, data)
            model.train()
            saved_at = time.monotonic()
        if out_of_time:
            break
    if step == resumed_from:  # nothing left to do: the checkpoint is already complete
        model.eval()
    return PretrainResult(
        checkpoint=out,
        steps_done=step,
        resumed_from=resumed_from,
        seconds=time.monotonic() - started,
        losses=losses,
    )


# --- `python -m ml pretrain` ---------------------------------------------------------------------------------


def audio_files(audio_list: Path, *, with_keys: bool) -> list[tuple[Path, Key | None]]:
    """A folder (every audio file under it, no keys) or a CSV with a `path` column (and `key`, read with_keys)."""
    from ml.audio import READABLE_FORMATS
    from ml.labelfile import read_label_file

    if audio_list.is_dir():
        suffixes = {f".{name.strip()}" for name in READABLE_FORMATS.split(",")}
        return [(path, None) for path in sorted(audio_list.rglob("*")) if path.suffix.lower() in suffixes]
    rows = read_label_file(audio_list, require_files=True, keys=with_keys)
    return [(row.path, row.key) for row in rows]  # key is None throughout unless with_keys


def synthetic_audio(n_tracks: int, *, seed: int) -> list[tuple[np.ndarray, Key, str]]:
    """Labelled tracks from the project's generator, every key equally often, all difficulties."""
    from ml.keys import ALL_KEYS
    from ml.synth import random_spec, render

    made = []
    for i in range(n_tracks):
        spec = random_spec(
            seed=seed * 100_000 + i, key=ALL_KEYS[i % 24], duration_range=(16, 32), difficulty=(i % 4) / 4
        )
        made.append((render(spec, sample_rate=16_000), spec.key, f"synth:{spec.seed}"))
    return made


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json
    import sys

    from tqdm import tqdm

    from ml.audio import AudioDecodeError, load_audio
    from ml.labelfile import LabelFileError

    parser = argparse.ArgumentParser(prog="python -m ml pretrain", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--audio-list",
        type=Path,
        required=True,
        help="a folder, or a CSV with a path column (and key for --with-keys)",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (and resume from)")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished checkpoint at --out")
    parser.add_argument("--steps", type=int, default=PretrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
    parser.add_argument("--segment-seconds", type=float, default=PretrainConfig.segment_seconds)
    parser.add_argument("--with-keys", action="store_true", help="also learn from the CSV's key column")
    parser.add_argument("--synthetic", type=int, default=0, help="add N labelled synthetic tracks")
    parser.add_argument("--init-from", type=Path, help="start from this checkpoint's weights")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="use at most this much of each file")
    parser.add_argument("--time-budget", type=float, help="stop (with a resumable checkpoint) after N s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    try:
        files = audio_files(args.audio_list, with_keys=args.with_keys)
    except LabelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not files and not args.synthetic:
        print(f"error: {args.audio_list} lists no audio files", file=sys.stderr)
        return 2
    decoded = []
    for path, key in tqdm(files, desc="decoding", unit="track", disable=None, file=sys.stderr):
        try:
            decoded.append((load_audio(path, max_duration_s=args.max_seconds), key, str(path)))
        except AudioDecodeError as error:
            print(f"skipped: {error}", file=sys.stderr)
    if args.synthetic:
        decoded += synthetic_audio(args.synthetic, seed=args.seed)
    tracks = tracks_from_audio(decoded, device=args.device)
    del decoded
    config = PretrainConfig(
        steps=args.steps, batch_size=args.batch_size, segment_seconds=args.segment_seconds, seed=args.seed
    )
    bar = tqdm(total=config.steps, desc="pretraining", unit="step", disable=None, file=sys.stderr)

    def report(step: int, steps: int, losses: dict) -> None:
        bar.n = step
        bar.set_postfix(loss=f"{losses['total']:.3f}", refresh=False)
        bar.refresh()

    data = {
        "audio_list": str(args.audio_list),
        "tracks": len(tracks),
        "labelled": sum(track.key is not None for track in tracks),
        "synthetic": args.synthetic,
    }
    with bar:
        result = pretrain(
            tracks,
            out=args.out,
            config=config,
            device=args.device,
            resume=args.resume,
            init_from=args.init_from,
            progress=report,
            time_budget_s=args.time_budget,
            data_description=data,
        )
    summary = {
        "checkpoint": str(result.checkpoint),
        "steps_done": result.steps_done,
        "resumed_from": result.resumed_from,
        "seconds": round(result.seconds, 1),
        "last_losses": result.losses[-1] if result.losses else None,
    }
    print(json.dumps(summary, indent=2))
    return 0
