"""Answer one question about one video (or its stored features) with a trained MIST."""

import numpy as np
import torch

from .trainer import top_candidates


def answer_question(
    model,
    processor,
    question: str,
    choices: list[str] | None = None,
    video=None,
    frame_features: np.ndarray | None = None,
    patch_features: np.ndarray | None = None,
    question_clip_embedding: np.ndarray | None = None,
    top_k: int = 5,
) -> tuple[list[tuple[str, float]], object, np.ndarray | None]:
    """(top answers with softmax scores, model output, sampled frames `[F, H, W, 3]` or None).

    `video` is a path, frame folder or frame array, embedded with the processor's CLIP; otherwise
    `frame_features [F, D]` and `patch_features [F, P, D]` are used as stored. Runs on the model's device.
    """
    config = model.config
    if config.multiple_choice and not choices:
        raise ValueError(f"model {model.name_or_path!r} is multiple choice: pass the question's choices")
    frames = None
    inputs = {"text": [question]}
    if video is not None:
        frames = processor.video_processor.load_video(video, num_frames=config.num_frames)
        inputs["videos"] = [frames]  # already the sampled frames: sampling them again keeps all of them
    else:
        inputs["frame_features"] = frame_features[None]
        inputs["patch_features"] = patch_features[None]
    if question_clip_embedding is not None:
        inputs["question_clip_embeds"] = question_clip_embedding[None]
    else:
        inputs["return_question_clip_embeds"] = True
    if choices:
        inputs["choices"] = [list(choices)]
        names = list(choices)
    else:
        names = processor.answer_candidates(question)
        inputs["answers"] = names
    device = model.device
    batch = {key: value.to(device) for key, value in processor(**inputs).items()}
    with torch.no_grad():
        outputs = model(**batch)
    indices, scores = top_candidates(outputs.logits, top_k)
    answers = [(names[int(index)], float(score)) for index, score in zip(indices[0], scores[0])]
    return answers, outputs, frames
