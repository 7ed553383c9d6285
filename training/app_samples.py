"""Sample videos for `mist app` when it serves the demo's model: synthetic test videos of `mist demo`.

The demo model was trained on the synthetic task's CLIP-like features, not on CLIP features of
pixels, so a sample is answered from its stored features; its video (the task's frames rendered to
an mp4) gives the pictures and the timeline. A question typed about a sample is embedded the way
the task embeds its questions: the sum of the vectors of the object words it names and the
question-kind vector.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from processing.video_encoding import encode_video

from .demo.synthetic_dataset import OBJECT_WORDS, QUESTION_KINDS, SyntheticTaskConfig, SyntheticVideoQA

SAMPLE_FPS = 4  # frames per second of the rendered sample videos
SAMPLE_SCALE = 3  # rendered frames are the task's 64-pixel pictures, enlarged


@dataclass
class Sample:
    """A video offered on the page, with a question about it and, for synthetic videos, its features."""

    name: str
    video: str
    question: str
    choices: list[str] | None = None
    answer: str | None = None
    frame_features: np.ndarray | None = None  # [F, D]
    patch_features: np.ndarray | None = None  # [F, P, D]
    question_clip_embedding: np.ndarray | None = None  # [D], for `question`
    generator: SyntheticVideoQA | None = field(default=None, repr=False)

    def embed_question(self, question: str) -> np.ndarray | None:
        """The question's CLIP-like embedding in the synthetic task (None for a real video)."""
        if self.generator is None:
            return None
        if question.strip() == self.question and self.question_clip_embedding is not None:
            return self.question_clip_embedding
        words = question.lower().replace("?", " ").split()
        mentioned = [OBJECT_WORDS.index(word) for word in words if word in OBJECT_WORDS]
        kind = "together" if "together" in words else "order" if "before" in words or "after" in words else "when"
        embedding = self.generator.object_vectors[mentioned].sum(axis=0)
        embedding = embedding + 0.5 * self.generator.template_vectors[QUESTION_KINDS.index(kind)]
        embedding = embedding / max(np.linalg.norm(embedding), 1e-6)
        return (self.generator.config.feature_scale * embedding).astype(np.float32)


def demo_samples(demo_dir: str | Path, config, count: int = 3) -> list[Sample]:
    """The first `count` test questions of the demo saved in `demo_dir` (its `data/`), one per video, as
    samples for a model of `config`'s sizes; their videos are rendered once to `demo_dir/app_samples/`.
    Empty if the demo's data is missing."""
    from datasets import load_from_disk

    demo_dir = Path(demo_dir)
    if not (demo_dir / "data" / "questions").exists() or not (demo_dir / "data" / "features").exists():
        return []
    questions = load_from_disk(str(demo_dir / "data" / "questions"))["test"]
    features = load_from_disk(str(demo_dir / "data" / "features")).with_format("numpy")
    row_of = {video_id: row for row, video_id in enumerate(features["video_id"])}
    generator = SyntheticVideoQA(
        SyntheticTaskConfig(
            num_frames=config.num_frames,
            num_segments=config.num_segments,
            grid_size=config.grid_size,
            feature_dim=config.clip_hidden_size,
        )
    )
    samples, seen = [], set()
    for question in questions:
        if len(samples) == count:
            break
        video_id = question["video_id"]
        if video_id in seen or video_id not in row_of:
            continue
        seen.add(video_id)
        path = demo_dir / "app_samples" / f"{video_id}.mp4"
        if not path.exists():
            frames = generator.render_frames(video_id).repeat(SAMPLE_SCALE, axis=1).repeat(SAMPLE_SCALE, axis=2)
            encode_video(path, frames, SAMPLE_FPS, options={"crf": "18"})
        stored = features[row_of[video_id]]
        samples.append(
            Sample(
                name=video_id,
                video=str(path),
                question=question["question"],
                answer=question["answer"],
                frame_features=np.asarray(stored["frame_features"], dtype=np.float32),
                patch_features=np.asarray(stored["patch_features"], dtype=np.float32),
                question_clip_embedding=np.asarray(question["question_clip_embedding"], dtype=np.float32),
                generator=generator,
            )
        )
    return samples
