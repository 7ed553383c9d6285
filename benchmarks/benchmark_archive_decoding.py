"""Decoding videos that sit inside a zip archive: in place, through zipfile, or unpacked first.

    python benchmarks/benchmark_archive_decoding.py [--videos 8] [--seconds 20] [--frames 32]

Writes `--videos` H.264 MP4s (320x240, 30 fps, a key frame every 2 s) into a stored (uncompressed) zip,
as the Hub's video QA datasets ship them, and times sampling `--frames` frames of each:
`in place` (`processing.video_archives.open_member`: a window over the member's bytes), `zipfile`
(PyAV reading `ZipFile.open(member)`, seekable but through zipfile's reader) and `unpacked` (each
member copied to a temporary file, then decoded from its path). Checks that all three give the same
frames, and prints seconds per video with the machine named.
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
import zipfile
from functools import partial

import numpy as np

from modeling_mist.video_decoding_mist import load_video_frames, sample_frame_indices
from processing.video_archives import open_member
from processing.video_encoding import encode_video


def write_video(path: str, seconds: int) -> None:
    base = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frames = (np.roll(base, index, axis=1) for index in range(seconds * 30))  # 320x240 at 30 fps, scrolling
    encode_video(path, frames, 30, options={"g": "60", "preset": "veryfast"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    sample = partial(lambda metadata, count: sample_frame_indices(metadata.total_num_frames, count), count=args.frames)
    with tempfile.TemporaryDirectory() as folder:
        archive = os.path.join(folder, "videos.zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
            for index in range(args.videos):
                path = os.path.join(folder, f"{index}.mp4")
                write_video(path, args.seconds)
                out.write(path, f"videos/{index}.mp4")
                os.remove(path)
        members = [f"videos/{index}.mp4" for index in range(args.videos)]

        def in_place(member):
            with open_member(archive, member) as file:
                return load_video_frames(file, sample)[0]

        def through_zipfile(member):
            with zipfile.ZipFile(archive) as opened, opened.open(member) as file:
                return load_video_frames(file, sample)[0]

        def unpacked(member):
            with zipfile.ZipFile(archive) as opened, tempfile.TemporaryDirectory() as scratch:
                path = opened.extract(member, scratch)
                frames = load_video_frames(path, sample)[0]
                shutil.rmtree(scratch)
                return frames

        methods = {"in place": in_place, "zipfile": through_zipfile, "unpacked": unpacked}
        reference = [in_place(member) for member in members]
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.videos} videos "
              f"of {args.seconds} s 320x240 H.264 in a stored zip, {args.frames} frames sampled each")
        for name, method in methods.items():
            start = time.perf_counter()
            frames = [method(member) for member in members]
            seconds = (time.perf_counter() - start) / len(members)
            same = all(np.array_equal(a, b) for a, b in zip(frames, reference))
            print(f"{name:>9}: {seconds * 1000:.0f} ms per video (frames equal to in place: {same})")


if __name__ == "__main__":
    main()
