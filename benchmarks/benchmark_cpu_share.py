"""One video's extraction on one thread, timed in that thread's CPU time: comparable on a shared, loaded machine.

    python benchmarks/benchmark_cpu_share.py [--clip-dtype auto] [--num-frames 8] [--clip-batch-size 136]

Extracts the features of `--num-frames` random 854x480 frames (each 1 + 16 CLIP images) with
`MistVideoProcessor.extract_features` on one torch thread, preprocessing included, random ViT-B/32 weights, and
prints images per CPU second, GFLOP/s (8.82 GFLOP per image) and their share of the 2048-square bf16
matrix-product peak measured in the same thread before and after (the higher kept). Other processes slow the
wall clock, not much the thread's own CPU time, so this compares code versions where wall-clock rates swing.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_extraction import image_tower_gflops  # noqa: E402

from modeling_mist.video_processing_mist import MistVideoProcessor  # noqa: E402


def bf16_peak_gflops(size: int = 2048) -> float:
    a, b = (torch.randn(size, size).bfloat16() for _ in range(2))
    best = float("inf")
    for _ in range(4):
        start = time.thread_time()
        for _ in range(3):
            a @ b
        best = min(best, (time.thread_time() - start) / 3)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip-dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--clip-batch-size", type=int, default=136, help="images per forward (one video's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    processor = MistVideoProcessor(
        clip_pretrained=None, num_frames=args.num_frames, clip_batch_size=args.clip_batch_size,
        clip_dtype=None if args.clip_dtype == "auto" else args.clip_dtype,
    )
    frames = np.random.default_rng(0).integers(0, 256, (args.num_frames, 480, 854, 3), dtype=np.uint8)
    video = torch.from_numpy(frames)
    processor.extract_features([video[:1]])  # build CLIP, load kernels: not timed
    peak = bf16_peak_gflops()
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    processor.extract_features([video])
    cpu_seconds, wall_seconds = time.thread_time() - cpu_start, time.perf_counter() - wall_start
    peak = max(peak, bf16_peak_gflops())
    images = args.num_frames * (1 + processor.grid_size**2)
    gflops = images * image_tower_gflops(processor.clip_model_name) / cpu_seconds
    print(json.dumps({
        "images": images, "cpu_s": round(cpu_seconds, 2), "wall_s": round(wall_seconds, 2),
        "images_per_cpu_s": round(images / cpu_seconds, 2), "gflops": round(gflops),
        "bf16_peak_gflops": round(peak), "share": round(gflops / peak, 3),
        "weights": str(next(processor.clip_model().parameters()).dtype).removeprefix("torch."),
        "load_average": open("/proc/loadavg").read().split()[0],
    }))


if __name__ == "__main__":
    main()
