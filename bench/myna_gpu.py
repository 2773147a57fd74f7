"""Myna-Vertical embedding throughput (seconds of audio per second) on CUDA (fp16) or CPU.

    python bench/myna_gpu.py --device cuda --windows 4096
    python bench/myna_gpu.py --device cpu --threads 1 --windows 16

Weights are random unless --checkpoint is given: throughput does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

from ml.backbones.base import SAMPLE_RATE
from ml.backbones.myna import MynaVerticalBackbone


def measure(
    *,
    device: str,
    windows: int,
    window_samples: int,
    batch_size: int | None,
    threads: int | None,
    checkpoint: str | None,
) -> dict[str, object]:
    if threads:
        torch.set_num_threads(threads)
    backbone = MynaVerticalBackbone(
        checkpoint_path=checkpoint,
        window_samples=window_samples,
        hop_samples=window_samples,
        device=device,
        batch_size=batch_size,
    )
    rng = np.random.default_rng(0)
    # Non-overlapping windows that tile the track exactly, so the track yields `windows` windows.
    track = (0.1 * rng.standard_normal(windows * window_samples)).astype(np.float32)
    warmup = track[: min(windows, backbone.batch_size()) * window_samples]
    backbone.window_embeddings(warmup)  # kernels, allocator and position tables warm
    if backbone.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    embeddings = backbone.window_embeddings(track)
    elapsed = time.perf_counter() - start  # .cpu() on every batch already waited for the GPU
    assert embeddings.shape == (windows, backbone.embedding_dim)
    result: dict[str, object] = {
        "device": torch.cuda.get_device_name(backbone.device) if backbone.device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "window_samples": window_samples,
        "windows": windows,
        "batch_size": backbone.batch_size(),
        "seconds": round(elapsed, 3),
        "windows_per_second": round(windows / elapsed, 2),
        "audio_seconds_per_second": round(windows * window_samples / SAMPLE_RATE / elapsed, 1),
    }
    if backbone.device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(backbone.device) / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--window-samples", type=int, nargs="+", default=[100_000])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the backbone's own choice")
    parser.add_argument("--threads", type=int, nargs="+", default=[None], help="CPU threads to try")
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for window_samples in args.window_samples:
        for threads in args.threads:
            result = measure(
                device=args.device,
                windows=args.windows,
                window_samples=window_samples,
                batch_size=args.batch_size,
                threads=threads,
                checkpoint=args.checkpoint,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
