"""`mist predict`: answer one question about one video, and optionally draw what MIST selected.

    mist predict --model OUT --video clip.mp4 --question "what did the person hold?" [--choices A B C]
                 [--top-k 5] [--explain selection.png]

The video is decoded and embedded with the processor's CLIP. Without a video file (or to skip CLIP),
`--features FEATURES --video-id ID` reads stored features, and `--question-clip-embedding FILE`
(.npy or a JSON list) gives the question's CLIP embedding; `--clip-pretrained none` builds CLIP
with random weights (tests only). Prints JSON: the top answers with scores and, per ISTA layer, the
kept segments, frames and patches.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from training.data import VideoFeatureStore, load_features
from training.explain import draw_explanation, explanation_frames, selections_of
from training.factory import load_trained
from training.predict import answer_question


def read_embedding(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32).reshape(-1)
    with open(path, encoding="utf-8") as handle:
        return np.asarray(json.load(handle), dtype=np.float32).reshape(-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mist predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder (or Hub id) written by `mist train`")
    parser.add_argument("--question", required=True, help="the question, in words")
    parser.add_argument("--video", help="video file or frame folder")
    parser.add_argument("--choices", nargs="+", help="candidate answers (multiple-choice models)")
    parser.add_argument("--features", help="stored features dataset, instead of embedding --video with CLIP")
    parser.add_argument("--video-id", help="row of --features to use")
    parser.add_argument("--question-clip-embedding", help=".npy or JSON list: the question's CLIP embedding")
    parser.add_argument(
        "--clip-pretrained", default=None, help="override the processor's CLIP weights ('none': random)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="answers printed, best first")
    parser.add_argument("--explain", help="write a PNG of the frames with the kept segments and patches")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if present)"
    )
    args = parser.parse_args(argv)

    if args.video is None and (args.features is None or args.video_id is None):
        parser.error("pass --video, or --features with --video-id")
    try:
        model, processor = load_trained(args.model, args.clip_pretrained, args.device)
        frame_features = patch_features = None
        if args.features is not None:
            store = VideoFeatureStore(load_features(args.features))
            if args.video_id not in store:
                raise ValueError(f"video {args.video_id!r} is not in {args.features!r} ({len(store)} videos)")
            frame_features, patch_features = store[args.video_id]
        embedding = read_embedding(args.question_clip_embedding) if args.question_clip_embedding else None
        answers, outputs, frames = answer_question(
            model,
            processor,
            args.question,
            choices=args.choices,
            video=args.video if args.features is None else None,
            frame_features=frame_features,
            patch_features=patch_features,
            question_clip_embedding=embedding,
            top_k=args.top_k,
        )
        if frames is None and args.video is not None and args.explain:
            frames = processor.video_processor.load_video(args.video, num_frames=model.config.num_frames)
    except ValueError as error:
        print(f"mist predict: {error}", file=sys.stderr)
        return 2

    layers = selections_of(outputs)
    result = {"question": args.question, "answers": [{"answer": a, "score": round(s, 5)} for a, s in answers]}
    result["selections"] = [
        {"layer": number + 1, "segments": layer["segments"], "frames": layer["frames"], "patches": layer["patches"]}
        for number, layer in enumerate(layers)
    ]
    if args.explain:
        drawn, timing = explanation_frames(args.video, model.config.num_frames, model.config.num_segments)
        result["explanation"] = str(
            draw_explanation(
                drawn,
                layers,
                model.config.num_segments,
                model.config.grid_size,
                Path(args.explain),
                title=args.question,
                answers=answers,
                timing=timing,
            )
        )
    print(json.dumps(result, indent=2))
    return 0
