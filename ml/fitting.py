"""Training one key head on frozen window embeddings: AdamW + cross-entropy on transposed views, one
random window per view and step, early stopping on a validation set when there is one."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn import functional as F

from ml.augmentation import TrainingExample, Views
from ml.candidates import TrainConfig
from ml.heads import HeadConfig, KeyHead, predict_tracks
from ml.keys import Key
from ml.metrics import key_metrics, negative_log_likelihood

Progress = Callable[[float], None]
# An epoch is at least this many optimiser steps, so a handful of tracks still trains properly.
MIN_STEPS_PER_EPOCH = 20
# Below this size a head trains faster on one CPU thread than on several (thread overhead per small step).
SINGLE_THREAD_PARAMETERS = 2_000_000


def validation_score(head: KeyHead, validation: Sequence[TrainingExample]) -> tuple[float, float]:
    """(weighted score, −NLL): bigger is better; NLL breaks the ties a small validation set has."""
    probabilities = predict_tracks(head, [example.window_embeddings for example in validation])
    reference = [example.key for example in validation]
    estimated = [Key.from_index(int(i)) for i in probabilities.argmax(axis=1)]
    labels = np.array([key.index for key in reference])
    return key_metrics(reference, estimated)["weighted"], -negative_log_likelihood(probabilities, labels)


def train_head(
    *,
    train: Sequence[TrainingExample],
    config: HeadConfig,
    train_config: TrainConfig | None = None,
    seed: int,
    device: str = "cpu",
    cyclic: bool,
    progress: Progress | None = None,
    validation: Sequence[TrainingExample] | None = None,
    deadline: float | None = None,
) -> KeyHead:
    """AdamW + cross-entropy on windows; keeps the best epoch on `validation` when one is given.

    An epoch visits every (track, transposition) view once, through one randomly drawn window of it, and
    is at least MIN_STEPS_PER_EPOCH steps. `deadline` (a time.monotonic() value) ends training early so a
    search keeps its time budget.
    """
    if not train:
        raise ValueError("no training examples")
    settings = train_config or TrainConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    views = Views.build(train, cyclic=cyclic)
    if views.windows.shape[1] != config.input_dim:
        raise ValueError(
            f"embeddings have {views.windows.shape[1]} features but the config says {config.input_dim}"
        )

    head = KeyHead(config=config)
    # Small heads train faster on one CPU thread: per-step thread hand-offs cost more than they save.
    threads = 1 if device == "cpu" and head.num_parameters() < SINGLE_THREAD_PARAMETERS else None
    with _torch_threads(threads):
        head.fit_standardisation(views.windows)
        head.to(device=device, dtype=torch.float32)
        optimizer = torch.optim.AdamW(
            head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        windows = torch.from_numpy(views.windows).to(device)
        labels = torch.from_numpy(views.labels).to(device)
        n_views = len(views.labels)
        batch_size = min(settings.batch_size, n_views)
        steps_per_epoch = max(math.ceil(n_views / batch_size), MIN_STEPS_PER_EPOCH)

        best_score, best_state, epochs_since_best = None, None, 0
        for epoch in range(settings.epochs):
            head.train()
            passes = math.ceil(steps_per_epoch * batch_size / n_views)
            order = np.concatenate([rng.permutation(n_views) for _ in range(passes)])
            for step in range(steps_per_epoch):
                batch_views = order[step * batch_size : (step + 1) * batch_size]
                batch_windows = torch.from_numpy(views.sample_windows(batch_views, rng)).to(device)
                loss = F.cross_entropy(head(windows[batch_windows]), labels[batch_views])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if deadline is not None and time.monotonic() > deadline:
                    break
            if progress:
                progress((epoch + 1) / settings.epochs)
            if validation:
                score = validation_score(head, validation)
                if best_score is None or score > best_score:
                    best_score, best_state, epochs_since_best = score, copy.deepcopy(head.state_dict()), 0
                else:
                    epochs_since_best += 1
                    if epochs_since_best >= settings.patience:
                        break
            if deadline is not None and time.monotonic() > deadline:
                break
        if best_state is not None:
            head.load_state_dict(best_state)
        return head.eval()


@contextmanager
def _torch_threads(threads: int | None):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
