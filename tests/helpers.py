"""Helpers every test folder shares: the tiny random CLIP and a quiet offline subprocess.

Imported as `tests.helpers` (the test folders are packages); each folder's own `*_testing.py` builds
its fixtures (tiny models, synthetic tasks, frames of known content) on top of these, and videos are
written with the library's `processing.video_encoding.encode_video` (the app writes its samples with it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_EMBED_DIM = 16  # the tiny CLIP's embedding width: the tiny preset's clip_hidden_size

# open_clip model config: a 1-layer ViT on 224-pixel inputs (one crop is one CLIP image) and a 1-layer text tower.
TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": CLIP_EMBED_DIM,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def write_clip_config(folder: Path) -> str:
    """The tiny CLIP as an open_clip `local-dir:` model (no weights: seeded random initialisation)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    return f"local-dir:{folder}"


def run_python(
    args: list[str], cwd, env: dict | None = None, timeout: int | None = 600, **kwargs
) -> subprocess.CompletedProcess:
    """A subprocess of this interpreter with the repository importable, offline, with quiet, deterministic threads;
    `env` entries win (e.g. `{"PYTHONPATH": ""}` to hide the project)."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=str(cwd), env=full_env, capture_output=True, text=True, timeout=timeout, **kwargs
    )

