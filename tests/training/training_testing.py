"""Tiny text encoder, tiny synthetic task and subprocess helpers shared by the training tests.

Everything is built here: a 2-layer BERT with a vocabulary file written by the test, the synthetic
task at test sizes (8 frames, 4 segments, 2 x 2 grid, 16-d features), nothing downloaded.
"""

import json
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from datasets import Array2D, Array3D, Dataset, Features, Value, load_from_disk
from transformers import BertConfig, BertModel, BertTokenizer

from processing.video_encoding import encode_video
from tests.helpers import CLIP_EMBED_DIM
from training.demo.synthetic_dataset import OBJECT_WORDS, SyntheticTaskConfig, SyntheticVideoQA

FEATURE_DIM = CLIP_EMBED_DIM  # the tiny preset's clip_hidden_size
QUESTION_WORDS = "what appeared together with the did show up near beginning or end before after".split()
EXTRA_WORDS = "yes no red blue cup box why how".split()

def tiny_task_config(train_videos: int = 24, eval_videos: int = 8, seed: int = 0, **overrides) -> SyntheticTaskConfig:
    return SyntheticTaskConfig(
        num_frames=8,
        num_segments=4,
        grid_size=2,
        feature_dim=FEATURE_DIM,
        num_events=2,
        videos_per_split=(train_videos, eval_videos, eval_videos),
        seed=seed,
        **overrides,
    )


def write_text_encoder(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) and its word-level vocabulary, saved like a Hub checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", ","]
    vocabulary += list(OBJECT_WORDS) + QUESTION_WORDS + EXTRA_WORDS
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,  # with MIST's own dropout 0 and top-k selection, training is deterministic
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return folder


def write_task(folder: Path, config: SyntheticTaskConfig) -> tuple[Path, Path]:
    """The synthetic task saved as (questions save_to_disk folder, features save_to_disk folder)."""
    questions, features = SyntheticVideoQA(config).generate()
    questions.save_to_disk(str(folder / "questions"))
    features.save_to_disk(str(folder / "features"))
    return folder / "questions", folder / "features"


def write_features(folder: Path, video_ids, num_frames: int, num_patches: int, width: int, seed: int = 0) -> Path:
    """A features dataset like `mist extract-features` writes, of any size, random values."""
    rng = np.random.default_rng(seed)
    features = Features(
        {
            "video_id": Value("string"),
            "frame_features": Array2D((num_frames, width), "float16"),
            "patch_features": Array3D((num_frames, num_patches, width), "float16"),
        }
    )
    rows = {
        "video_id": list(video_ids),
        "frame_features": [rng.standard_normal((num_frames, width)).astype(np.float16) for _ in video_ids],
        "patch_features": [rng.standard_normal((num_frames, num_patches, width)).astype(np.float16) for _ in video_ids],
    }
    Dataset.from_dict(rows, features=features).save_to_disk(str(folder))
    return folder


def write_video(path: Path, num_frames: int = 20) -> Path:
    """A small H.264 mp4: grey frames brightening over time with a green square moving right."""
    frames = np.empty((num_frames, 48, 64, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index] = 10 + 10 * index
        frames[index, 10:22, 3 * index : 3 * index + 12] = (20, 200, 20)
    return encode_video(path, frames, 8)


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def question_rows(questions_folder: Path, split: str) -> list[dict]:
    """The tiny task's questions of one split as plain records (no evidence columns)."""
    splits = load_from_disk(str(questions_folder))
    return splits[split].remove_columns(["evidence_segments", "evidence_cells"]).to_list()


class RecordingHub:
    """Stands in for the Hub: `HfApi.create_repo` and `HfApi.upload_folder` record what they were asked,
    and `upload_folder` keeps a copy of the folder's files as they were at upload time."""

    def __init__(self):
        self.created, self.uploads = [], []

    def create_repo(self, api, repo_id, **kwargs):
        self.created.append({"repo_id": repo_id, **kwargs})
        return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"someone/{repo_id}")

    def upload_folder(self, api, *, repo_id, folder_path, ignore_patterns=None, **kwargs):
        folder = Path(folder_path)
        patterns = ignore_patterns or []
        files = {
            str(path.relative_to(folder)): path.read_bytes()
            for path in folder.rglob("*")
            if path.is_file()
            and not any(fnmatch(part, pattern) for part in path.relative_to(folder).parts for pattern in patterns)
        }
        self.uploads.append({"repo_id": repo_id, "folder_path": str(folder_path), "files": files, **kwargs})
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")
