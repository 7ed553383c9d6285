"""`mist predict`: answer one question about one video, and optionally draw what MIST selected.

    mist predict --model OUT --video clip.mp4 --question "what did the person hold?" [--choices A B C]
                 [--top-k 5] [--explain selection.png]

The video is decoded and embedded with the processor's CLIP. Without a video file (or to skip CLIP),
`--features FEATURES --video-id ID` reads stored features, and `--question-clip-embedding FILE`
(.npy or a JSON list) gives the question's CLIP embedding; `--clip-pretrained none` builds CLIP
with random weights (tests only). Prints JSON: the top answers with scores, the selection record (per ISTA
layer the segment scores and the kept segments, frames and patches with their times and scores: see
docs/inference.md) and the video's timing.
"""

import json
from pathlib import Path

import numpy as np

from training.cli.arguments import MistArgumentParser, default_device, load_trained_model
from training.errors import BrokenFileError, ReportedErrors, UsageError, named_by

# torch and the library load in the functions that use them, so that --help and usage errors answer at once

FRAMES_PER_STEP = 4  # frames (with their crops) sent to CLIP per progress step


def load_trained(model: str, clip_pretrained: str | None, device: str):
    """The trained model and processor (`load_trained_model`: its errors name `--model` / `--device`)."""
    return load_trained_model(model, clip_pretrained, device)


def read_embedding(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise UsageError(f"--question-clip-embedding {path}: no such file")
    try:
        if path.endswith(".npy"):
            return np.load(path).astype(np.float32).reshape(-1)
        with open(path, encoding="utf-8") as handle:
            return np.asarray(json.load(handle), dtype=np.float32).reshape(-1)
    except (ValueError, OSError) as error:
        raise BrokenFileError(f"{path}: not a .npy array or a JSON list of numbers ({error})") from error


def embed_video(processor, video: str, num_frames: int, num_segments: int, device: str, progress: bool):
    """(sampled frames `[F, H, W, 3]`, their `video_timing`, frame_features `[F, D]`, patch_features
    `[F, P, D]`) of one video, decoded once, with a progress bar over the frames CLIP encodes."""
    import torch
    from tqdm.auto import tqdm

    from training.explain import explanation_frames

    if not Path(video).exists():
        raise UsageError(f"--video {video}: no such file or folder")
    video_processor = processor.video_processor
    with tqdm(total=num_frames, desc=f"CLIP features of {Path(video).name}", unit="frame", disable=not progress) as bar:
        bar.set_postfix_str("decoding")
        frames, timing = explanation_frames(video, num_frames, num_segments)
        bar.set_postfix_str("")
        frame_chunks, patch_chunks = [], []
        for start in range(0, len(frames), FRAMES_PER_STEP):
            chunk = frames[start : start + FRAMES_PER_STEP]
            frame_features, patch_features = video_processor.extract_features([chunk], device=device)
            frame_chunks.append(frame_features[0])
            patch_chunks.append(patch_features[0])
            bar.update(len(chunk))
    return frames, timing, torch.cat(frame_chunks).numpy(), torch.cat(patch_chunks).numpy()


def parse_args(argv: list[str] | None):
    parser = MistArgumentParser(prog="mist predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder (or Hub id) written by `mist train`")
    parser.add_argument(
        "--question", required=True, help="the question, in words (cut to the model's max_question_length tokens)"
    )
    parser.add_argument("--video", help="video file (mp4, webm, avi, mkv) or folder of frame images")
    parser.add_argument("--choices", nargs="+", help="candidate answers, for a multiple-choice model")
    parser.add_argument("--features", help="stored features dataset, instead of embedding --video with CLIP")
    parser.add_argument("--video-id", help="which video of --features to use")
    parser.add_argument("--question-clip-embedding", help=".npy or JSON list: the question's CLIP embedding")
    parser.add_argument(
        "--clip-pretrained", default=None, help="override the processor's CLIP weights ('none': random)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="how many answers to print, best first (default: 5)")
    parser.add_argument("--explain", help="write a PNG of the frames with the kept segments and patches")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cuda if present)",
    )
    args = parser.parse_args(argv)
    if args.video is None and (args.features is None or args.video_id is None):
        parser.error("pass --video, or --features with --video-id")
    if args.top_k < 1:
        parser.error(f"--top-k {args.top_k}: expected at least 1 answer to print")
    return args


def check_video_fits(model, processor, model_path: str) -> None:
    """Refuse, before decoding and the CLIP pass, a model that cannot read its processor's CLIP features, naming
    what it can answer instead (the demo's model reads the synthetic task's features)."""
    try:
        processor.video_processor.check_clip_width(model.config.clip_hidden_size)
    except ValueError as error:
        demo_features = Path(model_path).parent / "data" / "features"
        if (Path(model_path).parent / "demo_results.json").exists() and demo_features.is_dir():
            hint = f"; it is `mist demo`'s model: ask about a synthetic video with --features {demo_features} "
            hint += "--video-id ID"
        else:
            hint = "; pass --features FEATURES --video-id ID with features of that width"
        raise UsageError(f"--model {model_path}: {error}{hint}") from error


def run(args) -> int:
    from modeling_mist.pipeline_mist import check_choices
    from training.data import (
        VideoFeatureStore,
        check_features_fit_model,
        check_processor_clip,
        feature_geometry,
        load_features,
    )
    from modeling_mist.selection_mist import frame_timing
    from training.explain import (
        draw_explanation,
        explanation_frames,
        placeholder_frames,
        selection_layers,
        selection_of,
    )
    from training.predict import answer_question

    args.device = args.device or default_device()
    choices = check_choices(args.choices, "--choices") if args.choices else None
    model, processor = load_trained(args.model, args.clip_pretrained, args.device)
    config = model.config
    frames, timing = None, frame_timing(config.num_frames, config.num_segments)
    if args.features is not None:
        with named_by("--features"):
            features = load_features(args.features)
            check_features_fit_model(
                feature_geometry(features, args.features), model.config, args.features, args.model
            )
            check_processor_clip(processor, features, args.features, args.model, args.clip_pretrained)
        store = VideoFeatureStore(features)
        if args.video_id not in store:
            raise UsageError(f"--video-id {args.video_id}: not in {args.features} ({len(store)} videos)")
        frame_features, patch_features = store[args.video_id]
        if args.video is not None and args.explain:
            frames, timing = explanation_frames(args.video, config.num_frames, config.num_segments)
    else:
        check_video_fits(model, processor, args.model)
        frames, timing, frame_features, patch_features = embed_video(
            processor, args.video, config.num_frames, config.num_segments, args.device, progress=not args.no_progress
        )
    embedding = read_embedding(args.question_clip_embedding) if args.question_clip_embedding else None
    answers, outputs, _ = answer_question(
        model,
        processor,
        args.question,
        choices=choices,
        frame_features=frame_features,
        patch_features=patch_features,
        question_clip_embedding=embedding,
        top_k=args.top_k,
    )

    selection = selection_of(outputs, timing=timing)
    result = {
        "question": args.question,
        "answers": [{"answer": a, "score": round(s, 5)} for a, s in answers],
        **selection.to_json(),
        "selections": [  # the kept indices alone, as printed before "selection" and "video" were
            {"layer": layer.layer, **{key: by_frame[key] for key in ("segments", "frames", "patches")}}
            for layer, by_frame in zip(selection.layers, selection_layers(selection))
        ],
    }
    if args.explain:
        drawn = frames if frames is not None else placeholder_frames(config.num_frames)
        result["explanation"] = str(
            draw_explanation(
                drawn,
                selection,
                config.num_segments,
                config.grid_size,
                Path(args.explain),
                title=args.question,
                answers=answers,
            )
        )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ReportedErrors("mist predict", args.debug) as outcome:
        return run(args)
    return outcome.status
