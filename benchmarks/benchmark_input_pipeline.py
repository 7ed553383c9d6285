"""Input pipeline throughput: questions joined with stored features and collated, no model.

    python benchmarks/benchmark_input_pipeline.py [--videos 200] [--questions-per-video 5] [--batch-size 128]
                                                  [--workers 0 1 2] [--epochs 2] [--pin-memory]

Builds an AGQA-sized features dataset on disk (32 frames x (1 + 16) CLIP embeddings of 512 floats per
video, float16, as `mist extract-features` writes it) and a question set with CLIP embeddings, then
times `DataLoader(MistQuestionDataset, collate_fn=make_collator(...))` over shuffled epochs: what the
Trainer's data loader does per training step. The tokenizer is the offline all-MiniLM-L6-v2 copy
(bert-base-uncased vocabulary). Prints questions/s per setting with the machine named.
"""

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch
from datasets import Array2D, Array3D, Dataset, Features, Sequence, Value
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from configuration.presets import minilm_path
from modeling_mist import MistConfig, MistProcessor
from training.data import MistQuestionDataset, VideoFeatureStore, load_features
from training.factory import make_collator

NUM_ANSWERS = 171
WORDS = "what did the person hold after before opening closing door cup book table while sitting on".split()


def write_features(folder: str, config: MistConfig, num_videos: int) -> None:
    frames, patches, width = config.num_frames, config.num_patches, config.clip_hidden_size
    features = Features(
        {
            "video_id": Value("string"),
            "frame_features": Array2D((frames, width), "float16"),
            "patch_features": Array3D((frames, patches, width), "float16"),
        }
    )
    rng = np.random.default_rng(0)

    def rows():
        for index in range(num_videos):
            yield {
                "video_id": f"video_{index:05d}",
                "frame_features": rng.standard_normal((frames, width), dtype=np.float32).astype(np.float16),
                "patch_features": rng.standard_normal((frames, patches, width), dtype=np.float32).astype(np.float16),
            }

    Dataset.from_generator(rows, features=features).save_to_disk(folder)


def make_questions(config: MistConfig, num_videos: int, per_video: int, vocabulary: list[str]) -> Dataset:
    rng = np.random.default_rng(1)
    count = num_videos * per_video
    return Dataset.from_dict(
        {
            "question_id": [f"q{index}" for index in range(count)],
            "video_id": [f"video_{index // per_video:05d}" for index in range(count)],
            "question": [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 18)))) + "?" for _ in range(count)],
            "answer": [vocabulary[int(rng.integers(len(vocabulary)))] for _ in range(count)],
            "question_clip_embedding": rng.standard_normal((count, config.clip_hidden_size)).astype(np.float32).tolist(),
        },
        features=Features(
            {
                "question_id": Value("string"),
                "video_id": Value("string"),
                "question": Value("string"),
                "answer": Value("string"),
                "question_clip_embedding": Sequence(Value("float32")),
            }
        ),
    )


def time_loader(dataset, collator, batch_size: int, workers: int, epochs: int, pin_memory: bool) -> float:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collator,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in loader:  # warm-up epoch: page cache, worker start
        pass
    started = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        for batch in loader:
            seen += batch["frame_features"].shape[0]
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=200, help="videos in the features dataset")
    parser.add_argument("--questions-per-video", type=int, default=5, help="questions per video")
    parser.add_argument("--batch-size", type=int, default=128, help="questions per batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to time")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per setting (after one warm-up)")
    parser.add_argument("--pin-memory", action="store_true", help="pin batches (what a GPU run does)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = MistConfig()  # AGQA sizes
    vocabulary = [f"answer {index}" for index in range(NUM_ANSWERS)]
    config.set_answer_vocabulary(vocabulary)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    processor = MistProcessor.from_mist_config(config, tokenizer, clip_pretrained=None)
    collator = make_collator(processor, config)  # what the Trainer uses
    cpu = platform.processor() or platform.machine()
    print(f"machine: CPU {cpu}, {len(os.sched_getaffinity(0))} cores available, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        write_features(folder + "/features", config, args.videos)
        store = VideoFeatureStore(load_features(folder + "/features"))
        questions = make_questions(config, args.videos, args.questions_per_video, vocabulary)
        dataset = MistQuestionDataset(questions, store, vocabulary)
        print(
            f"{len(dataset)} questions on {args.videos} videos ({config.num_frames} frames x {1 + config.num_patches} "
            f"x {config.clip_hidden_size} float16), batch {args.batch_size}"
        )
        for workers in args.workers:
            rate = time_loader(dataset, collator, args.batch_size, workers, args.epochs, args.pin_memory)
            cores = max(workers, 1)
            print(f"workers={workers}: {rate:8.1f} questions/s ({rate / cores:8.1f} per loading process)")


if __name__ == "__main__":
    main()
