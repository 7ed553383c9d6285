"""Feature extraction speed: the batched extractor against one-image-at-a-time loops, on one machine.

    python benchmarks/benchmark_extraction.py [--device cpu|cuda] [--videos 4] [--num-frames 32] [--grid-size 4] [--threads N]
        [--peak-tflops 989]

Generates small videos (moving coloured shapes, H.264), builds a random-weight CLIP ViT-B/32 (no
download; speed does not depend on the weights) and extracts the same features three ways, each in
its own process so that peak memory is its own:

* `naive`: like the reference notebook, decode a video, then per frame preprocess and encode the
  frame, then encode its crops one by one (1 image per forward, `torch.no_grad`, float32);
* `per-frame`: the notebook's actual batching, the frame and its crops in one forward (1 + P images);
* `batched`: `MistVideoProcessor.extract_features` as `mist extract-features` runs it: decoding in
  background threads, all frames and crops of `--batch-size` videos in forwards of
  `--clip-batch-size` images, `torch.inference_mode`, float16 autocast on GPU;
* `model-only` (default on GPU only): the CLIP forwards of `batched` alone, on random preprocessed images
  already on the device: the ceiling that decoding and preprocessing leave to the model.
* `model-only-half` and `model-only-compiled` (chosen with `--methods`): the same forwards with CLIP's
  weights cast to half precision once (`clip_dtype`: float16 on GPU, bfloat16 on CPU) instead of
  autocast casting them in every forward, and that half-precision image tower compiled with
  `torch.compile` (its compilation is part of the warm-up, not timed); both are compared with
  `model-only`'s features.

`--clip-dtype` sets the processor's `clip_dtype` for the other methods (what `mist extract-features
--clip-dtype` does; default `auto`: bfloat16 weights on a CPU with native bf16, else float32, float16
autocast on GPU).

Prints videos/s, images/s, GFLOP/s (ViT-B/32's 8.82 GFLOP per image) and their share of the
matrix-product peak measured in the same process in CLIP's compute type (2048-square products, before and
after, the higher kept), peak memory, CPU time and the load average, with the machine named, and checks that
the batched features equal the naive ones.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from modeling_mist.video_processing_mist import MistVideoProcessor
from processing.decode_pool import batched, decode_ahead
from processing.video_encoding import encode_video

HALF_VARIANTS = ("model-only-half", "model-only-compiled")  # model-only with half-precision CLIP weights
MODEL_ONLY = ("model-only", *HALF_VARIANTS)
DEFAULT_METHODS = ("naive", "per-frame", "batched", "model-only")  # model-only on GPU only
METHODS = (*DEFAULT_METHODS, *HALF_VARIANTS)


def moving_square(num_frames: int, width: int, height: int, colour: np.ndarray):
    """Frames `[H, W, 3]` of a grey that brightens, with a square of `colour` moving across it."""
    for time_step in range(num_frames):
        image = np.full((height, width, 3), 40 + (3 * time_step) % 180, dtype=np.uint8)
        left, top = (5 * time_step) % (width - 60), (3 * time_step) % (height - 60)
        image[top : top + 60, left : left + 60] = colour
        yield image


def write_videos(folder: str, count: int, num_frames: int, width: int, height: int) -> list[str]:
    paths, generator = [], np.random.default_rng(0)
    for index in range(count):
        path = os.path.join(folder, f"video{index}.mp4")
        colour = generator.integers(0, 256, 3)
        paths.append(encode_video(path, moving_square(num_frames, width, height, colour), 24, options={"g": "12"}))
    return paths


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), torch {torch.__version__}"


def run_naive(processor, paths, device, images_per_forward: int):
    """Decode each video, then per frame: preprocess, encode in forwards of `images_per_forward` images."""
    model = processor.clip_model(device)
    frame_features, patch_features = [], []
    with torch.no_grad():
        for path in paths:
            frames = torch.from_numpy(processor.load_video(path)).permute(0, 3, 1, 2)  # [F, 3, H, W]
            video_frames, video_patches = [], []
            for frame in frames:
                frame_image, crops = processor.clip_pixel_values(
                    frame[None].to(device)
                )  # [1, 3, S, S], [1, P, 3, S, S]
                images = torch.cat([frame_image, crops[0]])  # [1 + P, 3, S, S]
                embeddings = torch.cat([model.encode_image(chunk) for chunk in images.split(images_per_forward)])
                video_frames.append(embeddings[0])
                video_patches.append(embeddings[1:])
            frame_features.append(torch.stack(video_frames).cpu())
            patch_features.append(torch.stack(video_patches).cpu())
    return torch.stack(frame_features), torch.stack(patch_features)


def run_batched(processor, paths, device, batch_size: int, decode_workers: int):
    frame_features, patch_features = [], []
    decoded = decode_ahead(paths, processor.load_video, num_workers=decode_workers, max_pending=2 * batch_size)
    for batch in batched(decoded, batch_size):
        videos = [torch.from_numpy(frames) for _, frames, _ in batch]
        frames_out, patches_out = processor.extract_features(videos, device=device)
        frame_features.append(frames_out)
        patch_features.append(patches_out)
    return torch.cat(frame_features), torch.cat(patch_features)


def run_model_only(encode, pixels, num_videos: int, args):
    embeddings = encode(pixels).cpu()
    embeddings = embeddings.view(num_videos, args.num_frames, 1 + args.grid_size**2, -1)
    return embeddings[:, :, 0], embeddings[:, :, 1:]


def measure(args) -> dict:
    """One method in this process: time, peak memory, features saved for the comparison."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clip_dtype = args.clip_dtype
    if args.method in HALF_VARIANTS:  # float16 on GPU, bfloat16 on CPU
        clip_dtype = "float16" if device.type == "cuda" else "bfloat16"
    processor = MistVideoProcessor(
        clip_pretrained=None,
        num_frames=args.num_frames,
        grid_size=args.grid_size,
        clip_batch_size=args.clip_batch_size,
        clip_dtype=clip_dtype,
    )
    if args.method == "model-only-compiled":
        model = processor.clip_model(device)
        model.visual = torch.compile(model.visual)
    paths = sorted(os.path.join(args.work_dir, name) for name in os.listdir(args.work_dir) if name.endswith(".mp4"))

    def encode(images: torch.Tensor) -> torch.Tensor:
        return processor.encode_images(images, batch_size=args.clip_batch_size)

    if args.method in MODEL_ONLY:  # random preprocessed images, the same for every variant, made before the clock
        num_images = len(paths) * args.num_frames * (1 + args.grid_size**2)
        pixel_dtype = torch.float16 if device.type == "cuda" else torch.float32
        generator = torch.Generator(device).manual_seed(0)
        pixels = torch.randn(num_images, 3, 224, 224, generator=generator, device=device, dtype=pixel_dtype)
    # Warm-up: build CLIP, load kernels (on GPU for the full forward size), compile; not timed.
    # A compiled tower is warmed up at the forward size it will run (a new size would compile again).
    warm_up = args.clip_batch_size if device.type == "cuda" or args.method == "model-only-compiled" else 2
    encode(torch.zeros(warm_up, 3, 224, 224, device=device))
    # The matrix-product peak in CLIP's compute type, measured here before and after (other work on the machine
    # moves it; the higher one is reported, so the share is if anything low).
    weights = processor.clip_weights_dtype(device)
    compute_dtype = getattr(torch, weights) if weights else (torch.float16 if device.type == "cuda" else torch.float32)
    peak_before = matmul_peak_gflops(device, compute_dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.method == "naive":
        frame_features, patch_features = run_naive(processor, paths, device, images_per_forward=1)
    elif args.method == "per-frame":
        frame_features, patch_features = run_naive(processor, paths, device, images_per_forward=args.grid_size**2 + 1)
    elif args.method in MODEL_ONLY:
        frame_features, patch_features = run_model_only(encode, pixels, len(paths), args)
    else:
        frame_features, patch_features = run_batched(processor, paths, device, args.batch_size, args.decode_workers)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    matmul_peak = max(peak_before, matmul_peak_gflops(device, compute_dtype))
    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB GPU"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS"
    np.save(os.path.join(args.work_dir, f"{args.method}.npy"), patch_features.numpy())
    num_images = len(paths) * args.num_frames * (1 + args.grid_size**2)
    return {
        "method": args.method,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "videos": len(paths),
        "images": num_images,
        "peak": peak,
        "matmul_peak_gflops": matmul_peak,
        "compute_dtype": str(compute_dtype).removeprefix("torch."),
    }


def image_tower_gflops(model_name: str = MistVideoProcessor.clip_model_name) -> float:
    """GFLOP of one image through open_clip ViT `model_name`'s image tower, every token in every block, from its
    config: the patch embedding, per block the QKV, output and MLP products and attention's two, the projection
    (ViT-B/32: 8.82 GFLOP, 4.4 GMAC)."""
    import open_clip

    config = open_clip.get_model_config(model_name)
    vision = config["vision_cfg"]
    width, patch, image = vision["width"], vision["patch_size"], vision["image_size"]
    mlp_width = int(width * vision.get("mlp_ratio", 4.0))
    patches = (image // patch) ** 2
    tokens = patches + 1  # and the class token
    block = 2 * tokens * width * (4 * width + 2 * mlp_width) + 2 * 2 * tokens**2 * width
    flops = 2 * patches * 3 * patch**2 * width + vision["layers"] * block + 2 * width * config["embed_dim"]
    return flops / 1e9


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """The best GFLOP/s of `size`-square matrix products in `dtype` on `device`: the peak the ViT's are held to."""
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * size**3 / best / 1e9


def flop_limit_report(images_per_second: float, peak_tflops: float, gflops_per_image: float) -> str:
    """How far a rate is from the FLOP limit: the images/s the peak would allow, and the share reached."""
    limit = peak_tflops * 1000 / gflops_per_image  # images/s at the peak
    return f"FLOP limit {limit:,.0f} images/s; reached {images_per_second / limit:.1%} ({limit / images_per_second:.1f}x from it)"


def load_average() -> str:
    return open("/proc/loadavg").read().split()[0]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--videos", type=int, default=4, help="videos to extract")
    parser.add_argument("--video-frames", type=int, default=96, help="frames per generated video")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--num-frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--grid-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4, help="videos per batched step")
    parser.add_argument(
        "--clip-batch-size", type=int, default=MistVideoProcessor.clip_batch_size, help="images per batched forward"
    )
    parser.add_argument("--decode-workers", type=int, default=4)
    parser.add_argument("--clip-dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's dense fp16 peak in TFLOP/s (H100 SXM: 989, H100 PCIe: 756, A100: 312): prints each "
        "method's share of ViT-B/32's FLOP limit at that nominal peak too (8.82 GFLOP per 224x224 image)",
    )
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, help="default: naive, per-frame and batched, and model-only on GPU"
    )
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)  # internal: run one method
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.method:
        print(json.dumps(measure(args)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as work_dir:
        write_videos(work_dir, args.videos, args.video_frames, args.width, args.height)
        images_per_video = args.num_frames * (1 + args.grid_size**2)
        print(f"machine: {machine_name(device)}")
        print(
            f"CLIP {MistVideoProcessor.clip_model_name} (random weights); {args.videos} videos of "
            f"{args.video_frames} frames {args.width}x{args.height}; {args.num_frames} frames x (1 + {args.grid_size**2} crops) = "
            f"{images_per_video} images per video; CLIP precision {args.clip_dtype}"
        )
        gflops = image_tower_gflops()
        print(f"ViT-B/32: {gflops:.2f} GFLOP per image (every token in every block); load average {load_average()}")
        print(
            f"{'method':<20} {'seconds':>8} {'videos/s':>9} {'images/s':>9} {'GFLOP/s':>8} {'matmul peak':>12} "
            f"{'share':>6}  peak memory"
        )
        results = {}
        methods = args.methods or [m for m in DEFAULT_METHODS if device.type == "cuda" or m != "model-only"]
        for method in methods:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                *sys.argv[1:],
                "--method",
                method,
                "--work-dir",
                work_dir,
            ]
            completed = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            results[method] = result
            images_per_second = result["images"] / result["seconds"]
            achieved = images_per_second * gflops
            limit = f"  {flop_limit_report(images_per_second, args.peak_tflops, gflops)}" if args.peak_tflops else ""
            matmul_peak = f"{result['matmul_peak_gflops']:.0f} {result['compute_dtype']}"
            print(
                f"{method:<20} {result['seconds']:8.2f} {result['videos'] / result['seconds']:9.3f} "
                f"{images_per_second:9.1f} {achieved:8.0f} {matmul_peak:>12} "
                f"{achieved / result['matmul_peak_gflops']:6.1%}  {result['peak']}{limit}  "
                f"(CPU time {result['cpu_seconds']:.1f} s, load {load_average()})",
                flush=True,
            )
        if "naive" in results and "batched" in results:
            speedup = results["naive"]["seconds"] / results["batched"]["seconds"]
            naive, batched_features = (np.load(os.path.join(work_dir, f"{m}.npy")) for m in ("naive", "batched"))
            difference = np.abs(naive - batched_features).max()
            scale = np.abs(naive).mean()
            print(
                f"batched is {speedup:.1f}x faster than naive; max |batched - naive| = {difference:.2e} (mean |feature| {scale:.2f})"
            )
        if "model-only" in results:
            reference = torch.from_numpy(np.load(os.path.join(work_dir, "model-only.npy"))).flatten(0, -2)
            for method in HALF_VARIANTS:
                if method in results:
                    features = torch.from_numpy(np.load(os.path.join(work_dir, f"{method}.npy"))).flatten(0, -2)
                    cosine = torch.nn.functional.cosine_similarity(features, reference, dim=-1).min().item()
                    print(f"{method} against model-only: smallest cosine similarity {cosine:.5f}")


if __name__ == "__main__":
    main()
