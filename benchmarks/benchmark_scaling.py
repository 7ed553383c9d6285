"""How cost grows: extraction time and peak memory against video length, training-data memory against dataset size.

    python benchmarks/benchmark_scaling.py [--lengths 10 60 600 3600] [--fps 12] [--gop-seconds 5]
        [--dataset-videos 100 1000 4000] [--threads 2] [--clip-dtype auto] [--parts extraction training] [--decode-only]

Extraction: one generated 854x480 H.264 video per length (a moving block on a gradient, low bitrate, a key frame
every `--gop-seconds`, as web videos have; one key-frame interval encoded, then its packets repeated), each extracted in a fresh process by `MistVideoProcessor` with
random ViT-B/32 weights (32 frames x (1 + 16 crops) = 544 CLIP images): seconds to decode the sampled frames,
seconds for preprocessing and CLIP, peak RSS. The decode touches only the key frames before the sampled frames,
so it follows the sampled frame count, not the length.

Training data: AGQA-sized float16 features (32 x 17 x 512 per video, `save_to_disk`, as `mist extract-features`
writes them) for `--dataset-videos` videos, 5 questions each, read for one shuffled epoch through the Trainer's
dataset and collator at batch 128, each size in a fresh process: the features stay memory-mapped, so the
process's own (anonymous) memory stays flat; its file-backed resident pages are the page cache of the features
read, which the kernel reclaims under pressure.
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


def write_video(path: str, seconds: float, fps: int, gop_seconds: float, width: int = 854, height: int = 480) -> None:
    """A 480p H.264 video of `seconds`, made cheaply: one key-frame interval is encoded (a horizontal gradient with
    a block moving across it, x264 ultrafast), then its packets are copied again and again with shifted
    timestamps. Decoding it costs what a real video of that length and key-frame interval costs."""
    import av

    from processing.video_encoding import encode_video

    started = time.perf_counter()
    segment_path = path + ".segment.mp4"
    segment_frames = max(1, int(gop_seconds * fps))
    background = np.broadcast_to(np.linspace(0, 200, width, dtype=np.uint8)[None, :, None], (height, width, 3))

    def frames():
        for index in range(segment_frames):
            image = background.copy()
            left = (7 * index) % (width - 80)
            image[200:280, left : left + 80] = (220, 40, 40)
            yield image

    options = {"preset": "ultrafast", "crf": "35", "g": str(segment_frames), "bf": "0"}
    encode_video(segment_path, frames(), fps, options=options)
    with av.open(segment_path) as source, av.open(path, "w") as output:
        source_stream = source.streams.video[0]
        packets = [packet for packet in source.demux(source_stream) if packet.size]
        output_stream = output.add_stream_from_template(source_stream)
        period = segment_frames * int(1 / (fps * source_stream.time_base))  # one segment, in time-base units
        for repeat in range(max(1, round(seconds / gop_seconds))):
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + repeat * period, packet.dts + repeat * period
                copy.is_keyframe, copy.time_base, copy.stream = packet.is_keyframe, packet.time_base, output_stream
                output.mux(copy)
    os.remove(segment_path)
    print(f"(wrote {seconds:g} s of video in {time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def rss_status() -> dict:
    """This process's resident memory now, split into anonymous and file-backed pages (MiB)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return fields


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_extraction(args) -> dict:
    from modeling_mist.video_processing_mist import MistVideoProcessor

    torch.set_num_threads(args.threads)
    processor = MistVideoProcessor(clip_pretrained=None, clip_dtype=args.clip_dtype)
    if not args.decode_only:
        processor.encode_images(torch.zeros(2, 3, 224, 224))  # build CLIP, load kernels: not timed
    before = peak_rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    frames = processor.load_video(args.video)  # [F, H, W, 3] uint8
    decoded = time.perf_counter()
    if args.decode_only:
        return {"decode_s": decoded - start, "cpu_s": time.process_time() - cpu_start, "peak_rss_mib": peak_rss_mib()}
    frame_features, patch_features = processor.extract_features([torch.from_numpy(frames)])
    done, cpu_seconds = time.perf_counter(), time.process_time() - cpu_start
    return {
        "decode_s": decoded - start,
        "clip_s": done - decoded,
        "images": frame_features.shape[1] * (1 + patch_features.shape[2]),
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": before,
        "cpu_s": cpu_seconds,
        "clip_weights": str(next(processor.clip_model().parameters()).dtype).removeprefix("torch."),
    }


def measure_training_data(args) -> dict:
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmark_input_pipeline import NUM_ANSWERS, make_questions

    from configuration.presets import minilm_path
    from modeling_mist import MistConfig, MistProcessor
    from training.data import MistQuestionDataset, VideoFeatureStore, load_features
    from training.factory import make_collator

    torch.set_num_threads(1)
    config = MistConfig()
    vocabulary = [f"answer {index}" for index in range(NUM_ANSWERS)]
    config.set_answer_vocabulary(vocabulary)
    processor = MistProcessor.from_mist_config(
        config, AutoTokenizer.from_pretrained(str(minilm_path())), clip_pretrained=None
    )
    store = VideoFeatureStore(load_features(args.features))
    dataset = MistQuestionDataset(make_questions(config, args.num_videos, 5, vocabulary), store, vocabulary)
    loader = DataLoader(
        dataset, batch_size=128, shuffle=True, collate_fn=make_collator(processor, config), num_workers=0,
        generator=torch.Generator().manual_seed(0),
    )
    start, peak_anon, peak_file, questions = time.perf_counter(), 0.0, 0.0, 0
    for batch in loader:
        questions += batch["frame_features"].shape[0]
        status = rss_status()
        peak_anon, peak_file = max(peak_anon, status["RssAnon"]), max(peak_file, status["RssFile"])
    return {
        "questions": questions,
        "seconds": time.perf_counter() - start,
        "peak_anon_mib": peak_anon,
        "peak_file_mib": peak_file,
        "peak_rss_mib": peak_rss_mib(),
    }


def run_child(arguments: list[str]) -> dict:
    command = [sys.executable, os.path.abspath(__file__), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return open("/proc/loadavg").read().split()[0]


def extraction_table(args, work_dir: str) -> None:
    print(f"\nExtraction of one new video, 854x480 at {args.fps} fps, key frame every {args.gop_seconds} s, "
          f"{args.threads} torch threads, clip_dtype {args.clip_dtype}")
    print(f"{'length':>8} {'frames':>8} {'file MiB':>9} {'decode s':>9} {'CLIP s':>8} {'images/s':>9} "
          f"{'CPU s':>7} {'peak RSS MiB':>13} {'load':>5}  weights")
    for seconds in args.lengths:
        path = os.path.join(work_dir, f"video-{seconds}s.mp4")
        write_video(path, seconds, args.fps, args.gop_seconds)
        load = load_average()
        child = ["--child", "extraction", "--video", path, "--threads", str(args.threads), "--clip-dtype", args.clip_dtype]
        result = run_child([*child, "--decode-only"] if args.decode_only else child)
        size = os.path.getsize(path) / 2**20
        if args.decode_only:
            print(
                f"{seconds:>7}s {int(seconds * args.fps):>8} {size:9.1f} {result['decode_s']:9.2f} {'-':>8} {'-':>9} "
                f"{result['cpu_s']:7.1f} {result['peak_rss_mib']:13.0f} {load:>5}  (decode only)",
                flush=True,
            )
            os.remove(path)
            continue
        print(
            f"{seconds:>7}s {int(seconds * args.fps):>8} {size:9.1f} {result['decode_s']:9.2f} {result['clip_s']:8.2f} "
            f"{result['images'] / result['clip_s']:9.1f} {result['cpu_s']:7.1f} {result['peak_rss_mib']:13.0f} {load:>5}  "
            f"{result['clip_weights']}",
            flush=True,
        )
        os.remove(path)


def training_table(args, work_dir: str) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmark_input_pipeline import write_features

    from modeling_mist import MistConfig

    print("\nTraining data: one shuffled epoch of the Trainer's dataset and collator, batch 128, AGQA-sized features")
    print(f"{'videos':>7} {'questions':>9} {'features MiB':>12} {'seconds':>8} {'anon MiB':>9} {'file MiB':>9} "
          f"{'peak RSS MiB':>13}")
    for num_videos in args.dataset_videos:
        folder = os.path.join(work_dir, f"features-{num_videos}")
        write_features(folder, MistConfig(), num_videos)
        size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)) / 2**20
        result = run_child(["--child", "training", "--features", folder, "--num-videos", str(num_videos)])
        print(
            f"{num_videos:>7} {result['questions']:>9} {size:12.0f} {result['seconds']:8.1f} "
            f"{result['peak_anon_mib']:9.0f} {result['peak_file_mib']:9.0f} {result['peak_rss_mib']:13.0f}",
            flush=True,
        )
        subprocess.run(["rm", "-rf", folder], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10, 60, 600, 3600], help="video lengths (s)")
    parser.add_argument("--fps", type=int, default=12, help="frame rate of the generated videos")
    parser.add_argument("--gop-seconds", type=float, default=5.0, help="seconds between key frames")
    parser.add_argument("--dataset-videos", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for extraction")
    parser.add_argument("--clip-dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--decode-only", action="store_true", help="extraction part: decode the sampled frames only")
    parser.add_argument("--parts", nargs="+", default=["extraction", "training"], choices=("extraction", "training"))
    parser.add_argument("--child", choices=("extraction", "training"), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    parser.add_argument("--num-videos", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = measure_extraction if args.child == "extraction" else measure_training_data
        print(json.dumps(measure(args)))
        return
    print(
        f"machine: CPU {platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}, "
        f"load average {load_average()} at the start"
    )
    with tempfile.TemporaryDirectory() as work_dir:
        if "extraction" in args.parts:
            extraction_table(args, work_dir)
        if "training" in args.parts:
            training_table(args, work_dir)


if __name__ == "__main__":
    main()
