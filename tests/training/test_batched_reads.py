"""Batched reads of the input pipeline: `__getitems__` gives what per-item reads give, from any number of
Arrow chunks, and the Trainer's collator keeps the stored float16 features."""

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from transformers import BertTokenizer

from modeling_mist import MistConfig, MistProcessor
from training.collator import MistDataCollator
from training.data import MistQuestionDataset, VideoFeatureStore
from training.demo.synthetic_dataset import answer_vocabulary
from training.factory import make_collator


@pytest.fixture(scope="module")
def dataset(tiny_task):
    questions, features = tiny_task
    store = VideoFeatureStore(load_from_disk(str(features)))
    vocabulary = answer_vocabulary()
    return MistQuestionDataset(load_from_disk(str(questions))["train"], store, vocabulary), vocabulary


def test_batched_examples_equal_single_reads(dataset):
    questions, _ = dataset
    indices = [5, 0, 5, 17, 3]  # any order, repeats allowed (a sampler with replacement)
    batch = questions.__getitems__(indices)
    assert len(batch) == len(indices)
    for index, example in zip(indices, batch):
        single = questions[index]
        assert example["question"] == single["question"] and example["labels"] == single["labels"]
        np.testing.assert_array_equal(example["patch_features"], single["patch_features"])
        np.testing.assert_array_equal(example["question_clip_embedding"], single["question_clip_embedding"])
    assert batch.stacked["patch_features"].shape == (5, 8, 4, 16)
    assert batch.stacked["patch_features"].dtype == np.float16  # as stored: half the bytes to copy


def test_several_arrow_chunks(tiny_task, tmp_path):
    features = load_from_disk(str(tiny_task[1]))
    features.save_to_disk(str(tmp_path / "sharded"), num_shards=3)
    sharded = VideoFeatureStore(load_from_disk(str(tmp_path / "sharded")))
    assert len(sharded.table.column("patch_features").chunks) == 3
    ids = [features[index]["video_id"] for index in (len(features) - 1, 0, len(features) // 2, 1)]
    frames, patches = sharded.batch(ids)
    for position, video_id in enumerate(ids):
        expected_frames, expected_patches = sharded[video_id]
        np.testing.assert_array_equal(frames[position], expected_frames)
        np.testing.assert_array_equal(patches[position], expected_patches)


def test_trainer_collator_keeps_stored_dtype(dataset, text_encoder_dir):
    questions, vocabulary = dataset
    config = MistConfig(num_frames=8, num_segments=4, grid_size=2, num_selected_patches=2, clip_hidden_size=16)
    config.set_answer_vocabulary(vocabulary)
    processor = MistProcessor.from_mist_config(config, BertTokenizer.from_pretrained(str(text_encoder_dir)))
    batch_examples = questions.__getitems__([0, 1, 2])
    lean = make_collator(processor, config)(batch_examples)
    float32 = MistDataCollator(processor, answer_vocabulary=vocabulary)(batch_examples)
    stored = batch_examples.stacked["frame_features"].dtype
    assert lean["frame_features"].dtype == torch.from_numpy(np.zeros(1, dtype=stored)).dtype
    assert float32["frame_features"].dtype == torch.float32
    torch.testing.assert_close(lean["patch_features"].float(), float32["patch_features"])
    assert lean["question_clip_embeds"].dtype == torch.float32


def test_a_shuffled_selection_of_several_chunks_reads_its_own_rows(tiny_task, tmp_path):
    features = load_from_disk(str(tiny_task[1]))
    features.save_to_disk(str(tmp_path / "sharded"), num_shards=3)
    shuffled = load_from_disk(str(tmp_path / "sharded")).shuffle(seed=0)  # rows mapped through an index table
    store = VideoFeatureStore(shuffled)
    ids = [shuffled[index]["video_id"] for index in (len(shuffled) - 1, 0, 1)]
    frames, patches = store.batch(ids)
    for position, video_id in enumerate(ids):
        row = features.with_format("numpy")[features["video_id"].index(video_id)]
        np.testing.assert_array_equal(frames[position], row["frame_features"])
        np.testing.assert_array_equal(patches[position], row["patch_features"])
    assert frames.flags.writeable and patches.dtype == np.float16  # as stored
