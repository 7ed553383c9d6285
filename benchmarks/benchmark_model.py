"""Training-step and inference throughput of MIST at the paper's AGQA sizes (bert-base text encoders).

    python benchmarks/benchmark_model.py [--device cpu|cuda] [--batch-size 16] [--steps 5] [--dtype float32|bfloat16]
        [--compile [--compile-mode default|reduce-overhead|max-autotune]]

Random weights and random features: speed does not depend on the values. Inference uses precomputed
answer embeddings for the 171-answer AGQA vocabulary (what `mist evaluate` does); training encodes the
vocabulary every step, as the reference does, and steps the fused AdamW kernel (what the presets use).
`--compile` runs both through `torch.compile` (inductor; the first, untimed step compiles; `--compile-mode
reduce-overhead` adds CUDA graphs). Prints questions/s and peak memory with the machine named.
"""

import argparse
import platform
import resource
import time

import torch

from modeling_mist import MistConfig, MistForVideoQuestionAnswering

AGQA_ANSWERS, ANSWER_LENGTH, QUESTION_LENGTH = 171, 5, 20


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def random_batch(config: MistConfig, batch_size: int, device: torch.device) -> dict:
    vocab = config.text_config.vocab_size
    return {
        "frame_features": torch.randn(batch_size, config.num_frames, config.clip_hidden_size, device=device),
        "patch_features": torch.randn(
            batch_size, config.num_frames, config.num_patches, config.clip_hidden_size, device=device
        ),
        "input_ids": torch.randint(1000, vocab, (batch_size, QUESTION_LENGTH), device=device),
        "attention_mask": torch.ones(batch_size, QUESTION_LENGTH, dtype=torch.long, device=device),
        "question_clip_embeds": torch.randn(batch_size, config.clip_hidden_size, device=device),
        "labels": torch.randint(0, AGQA_ANSWERS, (batch_size,), device=device),
    }


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def reset_peak(device: torch.device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def timed(step, steps: int, device: torch.device) -> float:
    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on CPU, 128 (the paper's) on GPU")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="autocast dtype")
    parser.add_argument("--attn-implementation", nargs="+", default=["sdpa", "eager"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    parser.add_argument(
        "--compile-mode",
        default=None,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="torch.compile mode with --compile (reduce-overhead: CUDA graphs, for launch-bound small batches)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    batch_size = args.batch_size or (128 if device.type == "cuda" else 16)
    autocast_dtype = getattr(torch, args.dtype)
    compiled = f", torch.compile ({args.compile_mode or 'default'})" if args.compile else ""
    print(f"machine: {machine_name(device)}")
    print(
        f"AGQA sizes, bert-base text encoders, batch {batch_size}, {args.steps} timed steps, autocast {args.dtype}"
        f"{compiled}, fused AdamW"
    )

    config = MistConfig(id2label={i: str(i) for i in range(AGQA_ANSWERS)})
    vocab = config.text_config.vocab_size
    answer_ids = torch.randint(1000, vocab, (AGQA_ANSWERS, ANSWER_LENGTH), device=device)
    answer_mask = torch.ones_like(answer_ids)
    batch = random_batch(config, batch_size, device)
    use_autocast = args.dtype != "float32"

    for implementation in args.attn_implementation:
        torch.manual_seed(0)
        model = MistForVideoQuestionAnswering(config).to(device)
        model.set_attn_implementation(implementation)
        parameters = sum(p.numel() for p in model.parameters()) / 1e6
        run = torch.compile(model, mode=args.compile_mode) if args.compile else model

        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
            answer_embeds = model.get_answer_embeddings(answer_ids, answer_mask)
            inference_inputs = {k: v for k, v in batch.items() if k != "labels"}
            reset_peak(device)
            seconds = timed(lambda: run(**inference_inputs, answer_embeds=answer_embeds), args.steps, device)
        inference_rate, inference_peak = batch_size * args.steps / seconds, peak_memory_mib(device)

        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)

        def train_step():
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                loss = run(**batch, answer_input_ids=answer_ids, answer_attention_mask=answer_mask).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        reset_peak(device)
        seconds = timed(train_step, args.steps, device)
        train_rate, train_peak = batch_size * args.steps / seconds, peak_memory_mib(device)
        memory_kind = "GPU peak allocated" if device.type == "cuda" else "process peak RSS"
        print(
            f"attn={implementation:5s} params={parameters:.1f}M  inference {inference_rate:8.1f} questions/s "
            f"({memory_kind} {inference_peak:,.0f} MiB)  training {train_rate:7.1f} questions/s "
            f"({memory_kind} {train_peak:,.0f} MiB)"
        )
        del model, run, optimizer


if __name__ == "__main__":
    main()
