"""Where extraction time goes, stage by stage: decode, host-to-device copy, preprocessing on the device, CLIP.

    python benchmarks/benchmark_extraction_stages.py [--device cuda] [--videos 16] [--decode-workers 12]
        [--clip-dtype auto] [--peak-tflops 989] [--threads N]

Generates the extraction benchmark's videos (`benchmark_extraction.write_videos`), then runs each stage over all
of them on its own, synchronised, with random ViT-B/32 weights: decoding the sampled frames (PyAV, in
`--decode-workers` threads), copying the uint8 frames to the device (pinned on a GPU), `clip_pixel_values` on
the device (the reference's float resize, crops, normalisation, from uint8), and the CLIP forwards of all the
images. Prints seconds and images/s per stage, and CLIP's share of the FLOP limit at `--peak-tflops` (the
card's dense fp16 peak) or, on a CPU, of the matrix-product peak measured here.
"""

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_extraction import image_tower_gflops, machine_name, matmul_peak_gflops, write_videos  # noqa: E402

from modeling_mist.video_processing_mist import MistVideoProcessor  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, function):
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--video-frames", type=int, default=96)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--num-frames", type=int, default=32)
    parser.add_argument("--decode-workers", type=int, default=4)
    parser.add_argument("--clip-batch-size", type=int, default=MistVideoProcessor.clip_batch_size)
    parser.add_argument("--clip-dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    parser.add_argument("--peak-tflops", type=float, help="the device's dense fp16 peak (H100 SXM: 989)")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    processor = MistVideoProcessor(
        clip_pretrained=None, num_frames=args.num_frames, clip_batch_size=args.clip_batch_size, clip_dtype=args.clip_dtype
    )
    weights = processor.clip_weights_dtype(device)
    pixel_dtype = getattr(torch, weights) if weights else (torch.float16 if device.type == "cuda" else torch.float32)
    processor.encode_images(torch.zeros(2, 3, 224, 224, device=device))  # build CLIP, load kernels: not timed
    processor.clip_pixel_values(torch.zeros(1, 3, args.height, args.width, dtype=torch.uint8, device=device))
    print(f"machine: {machine_name(device)}; CLIP weights {weights or 'float32 (autocast on GPU)'}")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_videos(folder, args.videos, args.video_frames, args.width, args.height)
        with ThreadPoolExecutor(args.decode_workers) as pool:
            videos, decode_s = timed(device, lambda: list(pool.map(processor.load_video, paths)))
    frames = [torch.from_numpy(video).permute(0, 3, 1, 2) for video in videos]  # [F, 3, H, W] uint8 each
    if device.type == "cuda":
        frames = [video.pin_memory() for video in frames]
    on_device, transfer_s = timed(device, lambda: [video.to(device, non_blocking=True) for video in frames])

    def preprocess():
        pixels = []
        for video in on_device:
            frame_images, crops = processor.clip_pixel_values(video)
            pixels.append(torch.cat([frame_images, crops.flatten(0, 1)]).to(pixel_dtype))
        return torch.cat(pixels)  # [videos * F * (1 + P), 3, S, S]

    pixels, preprocess_s = timed(device, preprocess)
    _, clip_s = timed(device, lambda: processor.encode_images(pixels))
    num_images = pixels.shape[0]
    gflops = image_tower_gflops(processor.clip_model_name)
    if args.peak_tflops:
        peak, peak_name = args.peak_tflops * 1000, f"{args.peak_tflops:g} TFLOP/s nominal"
    else:
        peak = matmul_peak_gflops(device, pixel_dtype)
        peak_name = f"{peak:.0f} GFLOP/s measured {str(pixel_dtype).removeprefix('torch.')} matrix products"
    print(f"{args.videos} videos of {args.video_frames} frames {args.width}x{args.height}, {num_images} CLIP images")
    print(f"{'stage':<12} {'seconds':>8} {'images/s':>10}")
    total = decode_s + transfer_s + preprocess_s + clip_s
    for name, seconds in (("decode", decode_s), ("transfer", transfer_s), ("preprocess", preprocess_s),
                          ("CLIP", clip_s), ("all, serial", total)):
        print(f"{name:<12} {seconds:8.3f} {num_images / seconds:10.1f}")
    share = num_images / clip_s * gflops / peak
    print(f"CLIP at {num_images / clip_s * gflops:,.0f} GFLOP/s ({gflops:.2f} GFLOP per image): {share:.1%} of {peak_name}; "
          f"all stages in series {num_images / total * gflops / peak:.1%}")


if __name__ == "__main__":
    main()
