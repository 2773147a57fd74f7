"""Self-supervised pretraining of the learned backbone on the library's own audio (ml.pretrain): the pool
split's analysed tracks (the held-out split never), their consensus keys where known, resumed from the
run's checkpoint when a worker died, then measured on the held-out split's labelled tracks (what the
network alone says before and after) and recorded for the next model version to use."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from ml.audio import AudioDecodeError, load_audio
from ml.backbones.skey import default_checkpoint, network_key_probabilities
from ml.cache import file_sha256
from ml.evaluation import before_after, summary_metrics
from ml.keys import Key
from ml.pretrain import PretrainConfig, pretrain, tracks_from_audio

from ..models import PretrainingRun, Track
from ..services import error_text
from ..services.pretraining import held_out_text, pretraining_finished
from .analysis import audio_path, embeddings_ensure
from .backbones import torch_device

logger = logging.getLogger(__name__)


def pretraining_checkpoint_path(run_id: int) -> Path:
    return settings.KEYWEB["MODEL_DIR"] / "backbones" / f"skey-pretrained-{run_id}.pt"


def pretraining_tracks():
    """What pretraining may read: analysed pool tracks. Held-out tracks measure the model and never enter."""
    return Track.objects.filter(status=Track.Status.READY, split=Track.Split.POOL).order_by("id")


# Tracks decoded at a time: their log-CQTs (float16) are kept, the audio is dropped, so memory holds one
# chunk of audio however large the library is.
DECODE_CHUNK = 32


def _library_tracks(alive, device: str) -> list:
    """Log-CQTs of the pool tracks (their keys where labeled), converted chunk by chunk."""
    limit = settings.KEYWEB["PRETRAINING_MAX_SECONDS_PER_TRACK"]
    tracks, chunk = [], []
    for track in pretraining_tracks().iterator(chunk_size=200):
        alive()
        try:
            audio = load_audio(audio_path(track), max_duration_s=limit)
        except (AudioDecodeError, FileNotFoundError) as error:
            logger.warning("pretraining skips track %s: %s", track.pk, error)
            continue
        key = Key.from_index(track.consensus_key) if track.consensus_label == "key" else None
        chunk.append((audio, key, f"track {track.pk}"))
        if len(chunk) == DECODE_CHUNK:
            tracks += tracks_from_audio(chunk, device=device)
            chunk = []
    if chunk:
        tracks += tracks_from_audio(chunk, device=device)
    return tracks


def _network_alone(tracks: list[Track], checkpoint: str, alive) -> dict[int, np.ndarray]:
    """{track id: the network's own key probabilities} for the tracks it could embed ("" = shipped weights).
    The embeddings are recorded as analysis records them, so the next training reuses them."""
    stored, _failures = embeddings_ensure(tracks, backbone_name="skey", checkpoint=checkpoint, alive=alive)
    embedded = [track for track in tracks if (track.pk, 0) in stored]
    probabilities = network_key_probabilities([np.load(stored[(track.pk, 0)].path) for track in embedded])
    return {track.pk: row for track, row in zip(embedded, probabilities, strict=True)}


def held_out_comparison(*, before: str | None, after: str, alive, progress=None) -> dict:
    """The network alone (its own key channels; no head, no labels) on the held-out split's key-labelled
    tracks, with the weights pretraining started from (`before`; None: it started from random weights)
    and with its checkpoint (`after`): each side's mir_eval scores and the paired gain. Those tracks never
    enter pretraining, so this is what pretraining on this library bought before any head is trained;
    {"n": 0} when no held-out track has a key label yet. `progress(fraction)` as it goes, track by track."""
    tracks = list(  # the held-out tracks a training evaluates on (worker.training.model_train)
        Track.objects.filter(split=Track.Split.TEST, consensus_label="key")
        .exclude(status=Track.Status.FAILED)
        .order_by("id")
    )
    seen, sides = [0], 1 if before is None else 2

    def tick() -> None:  # called before each track of each side
        if progress is not None:
            progress(seen[0] / (sides * len(tracks)))
            seen[0] += 1
        alive()

    after_probabilities = _network_alone(tracks, after, tick) if tracks else {}
    before_probabilities = _network_alone(tracks, before, tick) if tracks and before is not None else {}
    if progress is not None:
        progress(1.0)
    if before is not None:
        tracks = [track for track in tracks if track.pk in before_probabilities]
    tracks = [track for track in tracks if track.pk in after_probabilities]
    if not tracks:
        return {"n": 0}
    keys = [Key.from_index(track.consensus_key) for track in tracks]
    after_rows = np.stack([after_probabilities[track.pk] for track in tracks])
    if before is None:
        return {"n": len(tracks), "before": None, "after": summary_metrics(after_rows, keys), "gain": None}
    before_rows = np.stack([before_probabilities[track.pk] for track in tracks])
    return before_after(before_rows, after_rows, keys)


def pretraining_run(*, run_id: int, on_step=None) -> PretrainingRun | None:
    """Run (or continue) a queued pretraining; a duplicate delivery finds it claimed and does nothing.
    `on_step(step, steps)` is called after every step (the command's progress bar)."""
    claimed = PretrainingRun.objects.filter(pk=run_id, status=PretrainingRun.Status.QUEUED).update(
        status=PretrainingRun.Status.RUNNING, heartbeat_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    run = PretrainingRun.objects.get(pk=run_id)
    out = pretraining_checkpoint_path(run_id)
    last = [0.0]
    first_step = [True]

    def alive() -> None:
        if time.monotonic() - last[0] > 2.0:
            last[0] = time.monotonic()
            PretrainingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())

    def report(step: int, steps: int, losses: dict) -> None:
        if on_step is not None:
            on_step(step, steps)
        if first_step[0]:  # the step it continued from (after a worker stopped), shown while it runs
            first_step[0] = False
            PretrainingRun.objects.filter(pk=run_id).update(resumed_from=step - 1)
        if time.monotonic() - last[0] > 2.0 or step >= steps:
            last[0] = time.monotonic()
            PretrainingRun.objects.filter(pk=run_id).update(
                heartbeat_at=timezone.now(),
                steps_done=step,
                progress=round(0.1 + 0.8 * step / max(steps, 1), 3),  # the last 0.1: the held-out measurement
                losses=losses,
            )

    try:
        # Only a run's later attempts have a checkpoint of their own to continue; a file there on the first
        # is another run's with the same id (a database reset, the tests' rolled-back ids): it goes before
        # this run's path is recorded.
        resume = run.attempts > 1 and out.is_file()
        if not resume and out.is_file():
            logger.warning(
                "pretraining run %s: replacing %s, left by an earlier run with this id", run_id, out
            )
            out.unlink()
        device = torch_device()
        tracks = _library_tracks(alive, device)
        if not tracks:
            raise ValueError("there are no analysed tracks in the pool split to pretrain on")
        n_labelled = sum(track.key is not None for track in tracks)
        PretrainingRun.objects.filter(pk=run_id).update(
            n_tracks=len(tracks), n_labelled=n_labelled, progress=0.1, checkpoint_path=str(out)
        )
        shipped = default_checkpoint()
        result = pretrain(
            tracks,
            out=out,
            config=PretrainConfig(
                steps=run.steps_total, checkpoint_seconds=settings.KEYWEB["PRETRAINING_CHECKPOINT_S"]
            ),
            device=device,
            resume=resume,  # a run whose worker died continues from its last checkpoint
            init_from=shipped if shipped.is_file() and not resume else None,
            progress=report,
            data_description={"library_tracks": len(tracks), "labelled": n_labelled, "run": run_id},
        )
        started_from = "" if shipped.is_file() else None  # "": the shipped weights
        PretrainingRun.objects.filter(pk=run_id).update(progress=0.9, heartbeat_at=timezone.now())

        def measuring(fraction: float) -> None:  # the last tenth of the bar, with the heartbeat
            if time.monotonic() - last[0] > 2.0:
                last[0] = time.monotonic()
                PretrainingRun.objects.filter(pk=run_id).update(
                    heartbeat_at=timezone.now(), progress=round(0.9 + 0.1 * fraction, 3)
                )

        try:
            held_out = held_out_comparison(
                before=started_from, after=str(out), alive=alive, progress=measuring
            )
        except Exception as error:  # the checkpoint is good; only the measurement failed
            logger.exception("pretraining run %s: measuring it on the held-out tracks failed", run_id)
            held_out = {"n": 0, "error": error_text(error)}
        pretraining_finished(
            run_id=run_id,
            status=PretrainingRun.Status.READY,
            progress=1.0,
            steps_done=result.steps_done,
            resumed_from=result.resumed_from,
            checkpoint_path=str(out),
            checkpoint_sha256=file_sha256(out),
            held_out=held_out,
        )
        logger.info(
            "pretraining run %s: %d steps (resumed from %d) in %.0f s; network alone on %d held-out tracks: %s",
            run_id,
            result.steps_done,
            result.resumed_from,
            result.seconds,
            held_out["n"],
            held_out_text(held_out),
        )
    except Exception as error:
        logger.exception("pretraining run %s failed", run_id)
        pretraining_finished(
            run_id=run_id,
            status=PretrainingRun.Status.FAILED,
            error=error_text(error),
        )
    return PretrainingRun.objects.get(pk=run_id)
