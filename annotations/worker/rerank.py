"""The diversity-aware strategy's batch selection: among the most uncertain open pool tracks, a batch that
covers the embedding space away from what is already labeled, put at the head of the queue."""

from __future__ import annotations

import numpy as np
from django.db import transaction

from ml.active import k_center_greedy

from ..models import Embedding, Track
from ..selectors import model_version_active

DIVERSE_CANDIDATES = 300
DIVERSE_BATCH = 50


def queue_rerank_diverse(*, candidates: int = DIVERSE_CANDIDATES, batch: int = DIVERSE_BATCH) -> list[int]:
    """For the `diverse` strategy: among the most uncertain open pool tracks, pick a batch that covers the
    embedding space (k-center greedy, mixed with entropy) away from what is already labeled, and put that
    batch at the head of the queue in pick order. Near-duplicates of each other never sit side by side."""
    active = model_version_active()
    if active is None:
        return []
    open_tracks = list(
        Track.objects.filter(
            status=Track.Status.READY, consensus_label="", needs_review=False, split=Track.Split.POOL
        )
        .filter(predictions__model_version=active)
        .order_by("-predictions__entropy")
        .values_list("id", "predictions__entropy")[:candidates]
    )
    if not open_tracks:
        return []
    ids = [track_id for track_id, _ in open_tracks]
    entropy = np.array([value for _, value in open_tracks])
    fingerprint = active.backbone_fingerprint
    paths = dict(
        Embedding.objects.filter(track_id__in=ids, fingerprint=fingerprint, semitones=0).values_list(
            "track_id", "path"
        )
    )
    usable = [i for i, track_id in enumerate(ids) if track_id in paths]
    if not usable:  # nothing embedded with the active model's backbone yet: plain entropy order stands
        return []
    means = np.stack([np.load(paths[ids[i]]).mean(axis=0) for i in usable])
    labeled_paths = list(
        Embedding.objects.filter(
            fingerprint=fingerprint, semitones=0, track__consensus_label="key"
        ).values_list("path", flat=True)[:2000]
    )
    anchors = np.stack([np.load(p).mean(axis=0) for p in labeled_paths]) if labeled_paths else None
    order = k_center_greedy(means, n_select=batch, anchors=anchors, uncertainty=entropy[usable])
    chosen = [ids[usable[i]] for i in order]
    top = float(entropy.max()) if len(entropy) else 0.0
    with transaction.atomic():
        for rank, track_id in enumerate(chosen):
            # Above every plain-entropy priority (entropy ≤ ln 24 ≈ 3.18), in pick order.
            Track.objects.filter(pk=track_id).update(priority=top + 10.0 + (len(chosen) - rank))
    return chosen
