"""Fixtures of the processing tests: small real videos, a tiny random CLIP, a tiny BERT tokenizer.

Nothing is downloaded: the CLIP model is an open_clip `local-dir:` config without weights (seeded
random init), the tokenizer is built from a vocabulary file written here.
"""


import pytest
from transformers import BertTokenizer

from modeling_mist.processing_mist import MistProcessor
from modeling_mist.video_processing_mist import MistVideoProcessor
from tests.helpers import write_clip_config
from tests.processing.video_testing import ANSWERS, GRID_SIZE, NUM_FRAMES, WORDS, write_video


@pytest.fixture(scope="session")
def clip_model_name(tmp_path_factory) -> str:
    return write_clip_config(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", ".", ","] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    return str(folder)


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir) -> BertTokenizer:
    return BertTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> str:
    """One small video per container: mp4 (H.264 with B-frames), webm (VP9), avi (MPEG-4), mkv (H.264)."""
    folder = tmp_path_factory.mktemp("videos")
    write_video(str(folder / "alpha.mp4"), num_frames=30)
    write_video(str(folder / "bravo.webm"), num_frames=20)
    write_video(str(folder / "charlie.avi"), num_frames=16)
    write_video(str(folder / "delta.mkv"), num_frames=5)  # fewer frames than sampled: frames repeat
    return str(folder)


@pytest.fixture
def video_processor(clip_model_name) -> MistVideoProcessor:
    """float32 CLIP, the exact path (the auto precision, bfloat16 on CPUs with native bf16, is tested against it)."""
    return MistVideoProcessor(
        clip_model_name=clip_model_name,
        clip_pretrained=None,
        num_frames=NUM_FRAMES,
        grid_size=GRID_SIZE,
        clip_dtype="float32",
    )


@pytest.fixture
def processor(tokenizer, video_processor) -> MistProcessor:
    return MistProcessor(tokenizer, video_processor, answer_vocabulary=ANSWERS, max_question_length=12)
