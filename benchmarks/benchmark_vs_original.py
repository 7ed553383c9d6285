"""Side-by-side speed of this project's MIST and the original code (github showlab/mist), same work, CPU.

    python benchmarks/benchmark_vs_original.py --original DIR [--batch 32] [--steps 3] [--warmup 1]
        [--threads 2] [--repeats 3] [--answers 171] [--question-length 20] [--answer-length 6]
        [--dtype float32|bfloat16] [--clip-layers 1] [--as-shipped] [--lean] [--json OUT]

DIR is an extracted work tree of showlab/mist (never part of this project). Both models are built with
random weights as the benchmark runs (no Hub, no GPU, no checkpoint): the paper's AGQA sizes (taken
from `MistConfig()`), bert-base-sized text encoders for questions and answers, an open-ended vocabulary
of `--answers` answers of `--answer-length` tokens, questions of `--question-length` tokens.

Each run is a fresh process (this script in its worker mode) that builds one side and measures:
  training    what the original's train_mist.py does per batch: encode the whole answer vocabulary,
              forward, cross-entropy, backward, clip_grad_norm_(12), Adam step; process peak RSS after it
  eval cached answers encoded once, then forward only: what the original's eval() and `mist evaluate` do
  eval re-enc the vocabulary re-encoded for every batch (the same work on both sides)
Runs alternate original / project (the order flips every repeat); the table gives medians over
`--repeats` and the ratios project / original (above 1: the project is faster, or uses more memory),
throughput per wall-clock second and per second of the process's CPU time (steadier when other
processes share the cores; the load average is printed with each run).

Each worker also counts the FLOPs of one evaluation batch (torch's FLOP counter) and times a square
matrix product in its dtype; below the table, a roofline: the GFLOP/s each side reaches in evaluation, its
share of that matrix-product peak, and the ceiling, the project's evaluation with every FLOP at the peak,
as q/s and as a ratio to the original (what no kernel work can exceed for the same work on that machine).

Not compared: the original runs CLIP's text tower inside every forward (ViT-B/32: 12 layers, width 512,
77 tokens, gradients computed though never applied) where the project reads a question CLIP embedding
precomputed by its processor. The original side keeps `--clip-layers` of those 12 layers (default 1).
`--as-shipped` measures the original as its scripts run it instead: the whole ViT-B/32 CLIP that
`clip.load("ViT-B/32")` builds on a CPU (float32, the 12-layer text tower run in every forward and
backward, the 12-layer vision tower held in memory though never run), and no autocast on its side (it
has none); `--dtype` then applies to the project side only. The project's one-time cost that replaces
the text tower, a CLIP text embedding per question computed by its processor, is measured with it and
printed beside the table.
The original's selection draws Gumbel-softmax weights in training and evaluation, as shipped. The
project side steps a fused Adam (`torch.optim.Adam(fused=True)`, what `optim="adamw_torch_fused"` of its
presets runs) where this torch has one for the device.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import types

import torch
from torch.utils.flop_counter import FlopCounterMode

RESULT_PREFIX = "BENCHMARK-RESULT "
SIDES = ("original", "project")
GRAD_CLIP_NORM = 12.0  # args.py --clip default of the original, applied in its train_mist.py
ADAM_LR = 3e-5  # shells/agqa_v2_mist.sh
MATMUL_PEAK_SIZE = 2048  # square matrix product that measures a process's peak rate
CLIP_CONTEXT, CLIP_VOCAB, CLIP_TEXT_LAYERS = 77, 49408, 12  # CLIP ViT-B/32 text tower
ORIGINAL_FILES = (  # what the benchmark imports or reads from the checkout
    "model/mist.py",
    "model/language_model.py",
    "model/EncoderVid.py",
    "clip/__init__.py",
    "clip/clip.py",
    "clip/model.py",
    "clip/simple_tokenizer.py",
    "clip/bpe_simple_vocab_16e6.txt.gz",
    "util.py",
)
ROOFLINE_KEYS = ("eval_cached_gflop_per_question", "matmul_peak_gflops")
PHASES = (("train", "training step"), ("eval_cached", "eval, answers cached"), ("eval_reencode", "eval, re-encoded"))
TIMINGS = (  # (key, label, unit) of the table, in its order
    *((f"{phase}_questions_per_s", label, "q/s") for phase, label in PHASES),
    ("train_peak_rss_mib", "peak RSS, training", "MiB"),
    *((f"{phase}_questions_per_cpu_s", label, "q/CPU-s") for phase, label in PHASES),
)


# ---------------------------------------------------------------------------------------------------------
# The work both sides do


def random_work(args, config) -> dict:
    """The same random inputs for both sides (values do not change the speed)."""
    generator = torch.Generator().manual_seed(0)
    batch, frames, patches, width = args.batch, config.num_frames, config.grid_size**2, config.clip_hidden_size
    vocab = config.text_config.vocab_size
    clip_tokens = torch.randint(1, CLIP_VOCAB - 2, (batch, 1, CLIP_CONTEXT), generator=generator)
    clip_tokens[:, 0, args.question_length] = CLIP_VOCAB - 1  # end of text: CLIP pools at the largest id
    return {
        "patch_features": torch.randn(batch, frames, patches, width, generator=generator),
        "frame_features": torch.randn(batch, frames, width, generator=generator),
        "input_ids": torch.randint(1000, vocab - 1000, (batch, args.question_length), generator=generator),
        "answer_input_ids": torch.randint(1000, vocab - 1000, (args.answers, args.answer_length), generator=generator),
        "labels": torch.randint(0, args.answers, (batch,), generator=generator),
        "question_clip_embeds": torch.randn(batch, width, generator=generator),  # project: from the processor
        "question_clip_tokens": clip_tokens,  # original: encoded by CLIP inside its forward
    }


def time_steps(step, warmup: int, steps: int) -> tuple:
    """(wall seconds, process CPU seconds) of `steps` calls of `step` after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return time.perf_counter() - start, time.process_time() - start_cpu


def flops_per_question(step, batch: int) -> float:
    """Floating-point operations of one call of `step`, per question, as torch's FLOP counter counts them
    (matrix products, convolutions and attention: the work a faster kernel cannot remove)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / batch


def matmul_peak_gflops(dtype: str, size: int = MATMUL_PEAK_SIZE, repeats: int = 3) -> float:
    """This process's best matrix-product rate in GFLOP/s: a square `size` product in `dtype` at the torch
    thread count set, the fastest of `repeats` after one warm-up (the ceiling of the models' dense layers)."""
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(size, size, generator=generator).to(getattr(torch, dtype)) for _ in range(2))
    torch.matmul(left, right)
    fastest = min(time_steps(lambda: torch.matmul(left, right), 0, 1)[0] for _ in range(repeats))
    return 2 * size**3 / fastest / 1e9


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def side_dtype(side: str, args) -> str:
    """The autocast dtype of a side: the original as shipped has no autocast."""
    return "float32" if side == "original" and args.as_shipped else args.dtype


def measure(side, model, optimizer, encode_answers, predict, work, args) -> dict:
    """Throughput of one side. encode_answers(ids) -> embeddings; predict(embeddings or None) -> logits."""
    dtype = side_dtype(side, args)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    answer_ids, labels = work["answer_input_ids"], work["labels"]

    def train_step():
        with autocast:
            logits = predict(encode_answers(answer_ids))
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=GRAD_CLIP_NORM)
        optimizer.step()

    model.train()
    seconds = {"train": time_steps(train_step, args.warmup, args.steps)}
    train_rss = peak_rss_mib()

    model.eval()
    with torch.no_grad(), autocast:
        cached = encode_answers(answer_ids)
        seconds["eval_cached"] = time_steps(lambda: predict(cached), args.warmup, args.steps)
        seconds["eval_reencode"] = time_steps(lambda: predict(encode_answers(answer_ids)), args.warmup, args.steps)
        eval_flops = flops_per_question(lambda: predict(cached), args.batch)
    questions = args.batch * args.steps
    # CPU time counts only this process: a steadier measure than wall time when other processes share the cores
    return {
        "side": side,
        "dtype": dtype,
        **{f"{phase}_questions_per_s": questions / wall for phase, (wall, _) in seconds.items()},
        **{f"{phase}_questions_per_cpu_s": questions / cpu for phase, (_, cpu) in seconds.items()},
        "train_peak_rss_mib": train_rss,
        "eval_cached_gflop_per_question": eval_flops / 1e9,
        "matmul_peak_gflops": matmul_peak_gflops(dtype),
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "optimized_parameters_m": sum(p.numel() for group in optimizer.param_groups for p in group["params"]) / 1e6,
    }


# ---------------------------------------------------------------------------------------------------------
# Project side


def run_project(args) -> dict:
    from modeling_mist import MistConfig, MistForVideoQuestionAnswering

    config = MistConfig(id2label={i: f"answer {i}" for i in range(args.answers)})
    work = random_work(args, config)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = MistForVideoQuestionAnswering(config)
    build_seconds = time.perf_counter() - start
    if args.lean:  # recompute activations of the text encoders and ISTA blocks in the backward pass
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.Adam(model.parameters(), lr=ADAM_LR, fused=fused_adam_available())
    inputs = {
        "frame_features": work["frame_features"],
        "patch_features": work["patch_features"],
        "input_ids": work["input_ids"],
        "attention_mask": torch.ones_like(work["input_ids"]),
        "question_clip_embeds": work["question_clip_embeds"],
    }
    answer_mask = torch.ones_like(work["answer_input_ids"])

    def encode_answers(answer_ids):
        return model.get_answer_embeddings(answer_ids, answer_mask)

    def predict(answer_embeds):
        return model(**inputs, answer_embeds=answer_embeds).logits

    result = measure("project", model, optimizer, encode_answers, predict, work, args)
    extras = {"build_s": build_seconds, "attn_implementation": config._attn_implementation}
    extras["fused_adam"] = bool(optimizer.defaults.get("fused"))
    if args.as_shipped:
        extras["clip_question_ms"] = clip_question_embedding_ms(args, work)
    return {**result, **extras}


def fused_adam_available() -> bool:
    """Whether this torch has the fused Adam kernel for CPU tensors (torch >= 2.4)."""
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    except RuntimeError:
        return False
    return True


def clip_question_embedding_ms(args, work) -> float:
    """Milliseconds per question the project's processor spends on its CLIP text embedding (once per question,
    at preparation time): open_clip's ViT-B-32 text tower, random weights, batch `--batch`, `--dtype`."""
    import open_clip

    clip_model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokens = work["question_clip_tokens"][:, 0]  # [batch, 77]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")
    with torch.inference_mode(), autocast:
        wall, _ = time_steps(lambda: clip_model.encode_text(tokens), args.warmup, args.steps)
    return 1000 * wall / (args.batch * args.steps)


# ---------------------------------------------------------------------------------------------------------
# Original side: its code imported from the checkout, every Hub download replaced by a random init


def check_original_checkout(directory: str) -> str:
    """The checkout's absolute path, or SystemExit naming the first file the benchmark needs and cannot find."""
    if not os.path.isdir(directory):
        raise SystemExit(f"--original {directory}: no such directory (expected a checkout of github showlab/mist)")
    for relative in ORIGINAL_FILES:
        if not os.path.isfile(os.path.join(directory, relative)):
            raise SystemExit(f"--original {directory} is not a checkout of github showlab/mist: {relative} is missing")
    missing = [name for name in ("ftfy", "regex") if not _importable(name)]
    if missing:
        raise SystemExit(f"the original's CLIP package needs {' and '.join(missing)}: pip install ftfy regex")
    return os.path.abspath(directory)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def offline_original(directory: str, text_config, clip_layers: int, clip_vision: bool = False):
    """Import the original's model/mist.py with every download replaced by a random-init equivalent."""
    import transformers

    class BertTokenizerStub:  # the original only reads these ids (and the vocabulary size)
        cls_token_id, sep_token_id, pad_token_id = 101, 102, 0

        def __len__(self):
            return text_config.vocab_size

    def bert_model(name, **kwargs):
        return transformers.BertModel(transformers.BertConfig(**text_config.to_dict()))

    def small_clip(name, *args, **kwargs):
        import clip.model

        # the text tower at ViT-B/32 sizes; the vision tower, never run by MIST, full-size only when clip_vision
        model = clip.model.CLIP(
            embed_dim=512,
            image_resolution=224 if clip_vision else 32,
            vision_layers=12 if clip_vision else 1,
            vision_width=768 if clip_vision else 64,
            vision_patch_size=32,
            context_length=CLIP_CONTEXT,
            vocab_size=CLIP_VOCAB,
            transformer_width=512,
            transformer_heads=8,
            transformer_layers=clip_layers,
        )
        return model.float(), None

    transformers.BertModel.from_pretrained = staticmethod(bert_model)
    transformers.BertTokenizer.from_pretrained = staticmethod(lambda *args, **kwargs: BertTokenizerStub())
    transformers.DistilBertConfig.from_pretrained = staticmethod(
        lambda name, **kwargs: transformers.DistilBertConfig(**kwargs)
    )
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # it pads questions with .cuda() tensors
    try:
        import pkg_resources  # noqa: F401  (clip/clip.py imports packaging from it)
    except ImportError:
        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    sys.path.insert(0, directory)
    import clip

    clip.load = small_clip
    import model.mist as original_mist

    return original_mist


def original_box_columns(num_frames: int, grid_size: int, crop_size: int) -> torch.Tensor:
    """The 5 box columns the original expects after each patch feature: [frames, patches, 5] (util.transform_bb)."""
    import numpy as np
    from util import transform_bb

    boxes = [
        [column * crop_size, row * crop_size, (column + 1) * crop_size, (row + 1) * crop_size]
        for row in range(grid_size)
        for column in range(grid_size)
    ]
    boxes = np.tile(np.array(boxes), (num_frames, 1, 1))  # [frames, patches, 4]
    canvas = grid_size * crop_size
    return torch.from_numpy(transform_bb(boxes, canvas, canvas)).float()


def run_original(args) -> dict:
    from modeling_mist import MistConfig

    config = MistConfig(id2label={i: f"answer {i}" for i in range(args.answers)})
    work = random_work(args, config)
    original_mist = offline_original(args.original, config.text_config, args.clip_layers, args.as_shipped)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = original_mist.MIST_VideoQA(  # as main_agqa_v2.py builds it, sizes from the project's config
        feature_dim=config.clip_hidden_size,
        word_dim=config.text_config.hidden_size,
        N=config.num_hidden_layers,
        h=config.num_attention_heads,
        d_model=config.hidden_size,
        d_ff=config.intermediate_size,
        dropout=config.dropout,
        Q=config.max_question_length,
        T=config.num_frames,
        topk=config.num_selected_segments,
        numc=config.num_segments,
        topj=config.num_selected_patches,
    )
    build_seconds = time.perf_counter() - start
    # main_agqa_v2.py optimizes everything but CLIP
    optimizer = torch.optim.Adam(
        [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("clip.")], lr=ADAM_LR
    )
    boxes = original_box_columns(config.num_frames, config.grid_size, config.crop_size)
    patches = work["patch_features"]
    video = (torch.cat([patches, boxes.expand(patches.shape[0], -1, -1, -1)], dim=-1), work["frame_features"])
    question = work["input_ids"]
    question_mask = (question > 0).float()  # as train_mist.py

    def encode_answers(answer_ids):
        return model.get_answer_embedding(answer_ids)

    def predict(answer_embeds):
        model.answer_embeddings = answer_embeds  # what _compute_answer_embedding(a2v) stores
        return model(video, question, text_mask=question_mask, question_clip=work["question_clip_tokens"])

    result = measure("original", model, optimizer, encode_answers, predict, work, args)
    return {**result, "build_s": build_seconds, "clip_layers": args.clip_layers, "clip_vision": args.as_shipped}


# ---------------------------------------------------------------------------------------------------------
# Driver: fresh processes, alternating sides, medians and ratios


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import transformers

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def worker_command(side: str, args) -> list:
    command = [sys.executable, os.path.abspath(__file__), "--worker", side]
    for name in (
        "batch",
        "steps",
        "warmup",
        "threads",
        "answers",
        "question_length",
        "answer_length",
        "dtype",
        "clip_layers",
    ):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.as_shipped:
        command += ["--as-shipped"]
    if side == "original":
        command += ["--original", args.original]
    elif args.lean:
        command += ["--lean"]
    return command


def run_worker(side: str, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    completed = subprocess.run(worker_command(side, args), check=False, capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
        raise SystemExit(f"the {side} worker failed (exit status {completed.returncode}); its output is above")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def evaluation_ceiling(medians: dict) -> dict:
    """The roofline of evaluation (answers cached): each side's achieved GFLOP/s and share of its own dtype's
    matrix-product peak, and the fastest the project could evaluate if every counted FLOP ran at that peak
    (non-matrix work only adds time, so no kernel change can beat it), as q/s and as a ratio to the original."""
    ceiling = {}
    for side in SIDES:
        side_medians = medians[side]
        achieved = side_medians["eval_cached_gflop_per_question"] * side_medians["eval_cached_questions_per_s"]
        ceiling[f"{side}_achieved_gflops"] = achieved
        ceiling[f"{side}_share_of_peak"] = achieved / side_medians["matmul_peak_gflops"]
    project = medians["project"]
    best = project["matmul_peak_gflops"] / project["eval_cached_gflop_per_question"]
    ceiling["project_best_questions_per_s"] = best
    ceiling["best_ratio"] = best / medians["original"]["eval_cached_questions_per_s"]
    return ceiling


def summarize(runs: list) -> dict:
    medians = {
        side: {key: statistics.median(run[key] for run in runs if run["side"] == side) for key, _, _ in TIMINGS}
        for side in SIDES
    }
    ratios = {key: medians["project"][key] / medians["original"][key] for key, _, _ in TIMINGS}
    summary = {"medians": medians, "ratios": ratios}
    for side in SIDES:
        side_runs = [run for run in runs if run["side"] == side and "matmul_peak_gflops" in run]
        if side_runs:
            medians[side].update({key: statistics.median(run[key] for run in side_runs) for key in ROOFLINE_KEYS})
    if all("matmul_peak_gflops" in medians[side] for side in SIDES):
        summary["eval_ceiling"] = evaluation_ceiling(medians)
    clip_ms = [run["clip_question_ms"] for run in runs if "clip_question_ms" in run]
    if clip_ms:
        summary["clip_question_ms"] = statistics.median(clip_ms)
    return summary


def print_table(summary: dict, host: dict, args, load: tuple):
    print(
        f"\nmachine: {host['cpu']}, {host['cores_usable']} of {host['cores']} cores usable, {args.threads} torch "
        f"threads, torch {host['torch']}, transformers {host['transformers']}; "
        f"load average {load[0]:.2f} before, {load[1]:.2f} after"
    )
    print(
        f"work: batch {args.batch}, {args.answers} answers x {args.answer_length} tokens, questions of "
        f"{args.question_length} tokens, {args.steps} timed steps after {args.warmup} warm-up, median of "
        f"{args.repeats} runs per side; original: {side_dtype('original', args)}, {args.clip_layers} of CLIP's "
        f"{CLIP_TEXT_LAYERS} text layers{', full ViT-B/32 (as shipped)' if args.as_shipped else ''}; project: "
        f"{side_dtype('project', args)}{', lean' if args.lean else ''}"
    )
    print(f"{'':32s}{'original':>10s}{'project':>10s}{'project/original':>18s}")
    for key, label, unit in TIMINGS:
        original, project = summary["medians"]["original"][key], summary["medians"]["project"][key]
        digits = 0 if unit == "MiB" else 2
        row = f"{label} ({unit})"
        print(f"{row:32s}{original:10,.{digits}f}{project:10,.{digits}f}{summary['ratios'][key]:18.2f}")
    if "eval_ceiling" in summary:
        print_ceiling(summary, args)
    if "clip_question_ms" in summary:
        print(
            f"the project's processor computes each question's CLIP text embedding once, before training or "
            f"evaluation: {summary['clip_question_ms']:.2f} ms per question here (ViT-B-32 text tower, random "
            f"weights, {side_dtype('project', args)})"
        )


def print_ceiling(summary: dict, args):
    medians, ceiling = summary["medians"], summary["eval_ceiling"]
    print(f"roofline of evaluation, answers cached ({MATMUL_PEAK_SIZE}-square matrix product as the peak):")
    for side in SIDES:
        print(
            f"  {side:8s}: {medians[side]['eval_cached_gflop_per_question']:.2f} GFLOP per question at "
            f"{ceiling[f'{side}_achieved_gflops']:.0f} GFLOP/s, {ceiling[f'{side}_share_of_peak']:.0%} of the "
            f"{medians[side]['matmul_peak_gflops']:.0f} GFLOP/s {side_dtype(side, args)} peak"
        )
    print(
        f"  ceiling: with every FLOP at the {side_dtype('project', args)} peak the project would evaluate "
        f"{ceiling['project_best_questions_per_s']:.1f} q/s, {ceiling['best_ratio']:.2f}x the original: no faster "
        f"kernel goes beyond that for this work on this machine"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", help="an extracted checkout of github showlab/mist")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--repeats", type=int, default=3, help="processes per side; the table gives medians")
    parser.add_argument("--answers", type=int, default=171, help="open-ended answer vocabulary (AGQA: 171)")
    parser.add_argument("--question-length", type=int, default=20)
    parser.add_argument("--answer-length", type=int, default=6)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="CPU autocast dtype")
    parser.add_argument(
        "--clip-layers",
        type=int,
        default=1,
        help=f"layers of CLIP's text tower the original runs in its forward (ViT-B/32: {CLIP_TEXT_LAYERS})",
    )
    parser.add_argument(
        "--as-shipped",
        action="store_true",
        help="the original as its scripts run it: the whole ViT-B/32 CLIP (12 text layers in every forward, the "
        "vision tower in memory), float32; --dtype then applies to the project side only",
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="the project's lean mode: activation checkpointing of the text encoders and ISTA layers (the "
        "original side is unchanged; combine with --dtype bfloat16)",
    )
    parser.add_argument("--json", help="also write every run, the medians and the ratios to this file")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)  # one measurement, one JSON line
    args = parser.parse_args(argv)
    if args.as_shipped:
        args.clip_layers = CLIP_TEXT_LAYERS
    if args.question_length >= CLIP_CONTEXT:
        parser.error(f"--question-length {args.question_length}: expected fewer than {CLIP_CONTEXT} tokens")
    for name in ("batch", "steps", "threads", "repeats", "answers", "question_length", "answer_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: expected at least 1")
    if args.worker != "project":
        if args.original is None:
            parser.error("--original DIR is required: an extracted checkout of github showlab/mist")
        args.original = check_original_checkout(args.original)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        torch.set_num_threads(args.threads)
        result = run_original(args) if args.worker == "original" else run_project(args)
        print(RESULT_PREFIX + json.dumps({**result, "threads": torch.get_num_threads()}), flush=True)
        return

    host, runs = machine(), []
    load_before = os.getloadavg()[0]
    for repeat in range(args.repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:  # flip the order to spread drift over both
            run = {**run_worker(side, args), "load_average_after": os.getloadavg()[0]}
            runs.append(run)
            print(
                f"run {repeat + 1}/{args.repeats} {side:8s}: training {run['train_questions_per_s']:.2f} q/s, "
                f"eval {run['eval_cached_questions_per_s']:.2f} q/s cached / "
                f"{run['eval_reencode_questions_per_s']:.2f} q/s re-encoded, peak RSS "
                f"{run['train_peak_rss_mib']:,.0f} MiB (load average {run['load_average_after']:.2f})",
                flush=True,
            )
    load_after = os.getloadavg()[0]
    summary = summarize(runs)
    print_table(summary, host, args, (load_before, load_after))
    if args.json:
        work = {
            name: getattr(args, name)
            for name in (
                "batch",
                "steps",
                "warmup",
                "threads",
                "repeats",
                "answers",
                "question_length",
                "answer_length",
                "dtype",
                "clip_layers",
                "as_shipped",
                "lean",
            )
        }
        report = {"machine": host, "work": work, "load_average": [load_before, load_after], "runs": runs, **summary}
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
        print(f"written to {args.json}")


if __name__ == "__main__":
    main()
