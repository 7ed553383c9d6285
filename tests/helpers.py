"""Helpers every test folder shares: the `tiny` preset, the tiny random CLIP and a quiet offline subprocess.

Imported as `tests.helpers` (the test folders are packages); each folder's own `*_testing.py` builds
its fixtures (tiny models, synthetic tasks, frames of known content) on top of these, and videos are
written with the library's `processing.video_encoding.encode_video` (the app writes its samples with it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from configuration.presets import PRESETS, Preset

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_EMBED_DIM = 16  # the tiny CLIP's embedding width: the tiny preset's clip_hidden_size

# The test suite's preset (`--preset tiny`, not a user preset): hidden 32, 4 heads, 8 frames in 4 segments of a
# 2 x 2 grid, a 2-layer BERT, 4 CPU steps.
TINY = Preset(
    name="tiny",
    description="tiny sizes for tests",
    model=dict(
        text_config=dict(
            model_type="bert",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        ),
        num_frames=8,
        num_segments=4,
        grid_size=2,
        crop_size=16,
        clip_hidden_size=16,
        hidden_size=32,
        box_hidden_size=8,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        num_ista_layers=2,
        num_selected_segments=2,
        num_selected_patches=2,
        max_question_length=12,
        max_answer_length=6,
        dropout=0.0,
        attention_dropout=0.0,
        train_selection="topk",
    ),
    training=dict(
        learning_rate=1e-3,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        max_steps=4,
        lr_scheduler_type="constant",
        optim="adamw_torch",
        seed=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=True,
    ),
    text_encoder=None,
)


def register_test_presets() -> None:
    """Make `tiny` a `--preset` choice in this process (the root conftest calls it; `tests.mist_cli` for runs of
    the `mist` command in a new process)."""
    PRESETS.setdefault(TINY.name, TINY)


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

