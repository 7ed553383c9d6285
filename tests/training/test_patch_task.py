"""The patch task: its answers sit in grid cells of one segment, and nothing else tells them.

The probes here are plain multinomial logistic regressions trained on the generated training split and
scored on its test split: one that reads the segment summaries and the question's CLIP embedding stays at
chance; the same probe reading the evidence segment's patches answers, so the probe could find a leak.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_mist.modeling_mist import segment_summaries
from training.demo.patch_task import (
    ITEM_WORDS,
    QUADRANT_WORDS,
    PatchTaskConfig,
    PatchVideoQA,
    neighbour_cells,
    patch_answer_vocabulary,
    quadrant_of,
)

# The demo preset's sizes, fewer videos: a probe's chance level needs a few thousand questions.
PROBE_CONFIG = PatchTaskConfig(videos_per_split=(1200, 10, 400))


@pytest.fixture(scope="module")
def probe_task():
    generator = PatchVideoQA(PROBE_CONFIG)
    questions, features = generator.generate()
    store = {row["video_id"]: row for row in features.with_format("numpy")}
    return generator, questions, store


def split_arrays(questions, store, split):
    rows = questions[split]
    frames = torch.tensor(np.stack([store[video]["frame_features"] for video in rows["video_id"]]), dtype=torch.float32)
    patches = np.stack([store[video]["patch_features"] for video in rows["video_id"]]).astype(np.float32)
    return rows, frames, patches


def linear_probe_accuracy(train_inputs, train_labels, test_inputs, test_labels, num_classes: int) -> float:
    """Full-batch Adam on a softmax regression, a little weight decay; test accuracy."""
    torch.manual_seed(0)
    mean, std = train_inputs.mean(dim=0), train_inputs.std(dim=0) + 1e-6
    train_inputs, test_inputs = (train_inputs - mean) / std, (test_inputs - mean) / std
    probe = torch.nn.Linear(train_inputs.shape[1], num_classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(probe(train_inputs), train_labels).backward()
        optimizer.step()
    return (probe(test_inputs).argmax(dim=-1) == test_labels).float().mean().item()


def kind_data(questions, store, split, kind, vocabulary):
    rows, frames, patches = split_arrays(questions, store, split)
    keep = [index for index, value in enumerate(rows["question_type"]) if value == kind]
    labels = torch.tensor([vocabulary.index(rows["answer"][index]) for index in keep])
    question = torch.tensor(np.asarray(rows["question_clip_embedding"], dtype=np.float32)[keep])
    summaries = segment_summaries(frames[keep], PROBE_CONFIG.num_segments, "frame").flatten(1)  # [n, S * D]
    # what the evidence segment's patches show, read the simplest way for each kind: for "beside" the answer cell's
    # feature averaged over the segment's frames [n, D]; for "where" each cell's cosine with the question,
    # averaged over the frames [n, P] (the asked object's cell stands out)
    frames_per_segment = PROBE_CONFIG.frames_per_segment
    evidence = []
    for position, index in enumerate(keep):
        segment = rows["evidence_segments"][index][0]
        cells = patches[index, segment * frames_per_segment : (segment + 1) * frames_per_segment]  # [f, P, D]
        if kind == "beside":
            evidence.append(cells[:, rows["answer_cell"][index]].mean(axis=0))
        else:
            cells = cells / np.linalg.norm(cells, axis=-1, keepdims=True)
            evidence.append((cells @ question[position].numpy()).mean(axis=0))
    evidence = torch.tensor(np.stack(evidence))
    return labels, question, summaries, evidence


@pytest.mark.parametrize("kind, answers", [("beside", ITEM_WORDS), ("where", QUADRANT_WORDS)])
def test_a_summaries_probe_stays_at_chance_and_the_evidence_patches_answer(probe_task, kind, answers):
    _, questions, store = probe_task
    vocabulary = list(answers)
    train = kind_data(questions, store, "train", kind, vocabulary)
    test = kind_data(questions, store, "test", kind, vocabulary)
    chance = 1 / len(answers)
    summaries_probe = linear_probe_accuracy(
        torch.cat([train[1], train[2]], dim=1), train[0], torch.cat([test[1], test[2]], dim=1), test[0], len(answers)
    )
    evidence_probe = linear_probe_accuracy(train[3], train[0], test[3], test[0], len(answers))
    assert len(test[0]) == 400  # two questions per test video, the kinds in turn
    # 400 test questions: the standard error of a chance accuracy is at most 2.2 points
    assert summaries_probe < chance + 0.07, f"{kind}: a summaries-only probe reads the answer ({summaries_probe:.1%})"
    assert evidence_probe > 0.9, f"{kind}: the evidence segment's patches should tell ({evidence_probe:.1%})"


def test_the_question_embedding_is_half_aligned_with_the_asked_object(probe_task):
    generator, questions, _ = probe_task
    from training.demo.synthetic_dataset import OBJECT_WORDS

    for row in questions["test"].select(range(50)):
        embedding = np.asarray(row["question_clip_embedding"], dtype=np.float64)
        embedding /= np.linalg.norm(embedding)
        asked = next(word for word in OBJECT_WORDS if f" {word}?" in row["question"])
        cosines = generator.object_vectors @ embedding
        assert cosines[OBJECT_WORDS.index(asked)] == pytest.approx(0.5, abs=1e-4)
        assert np.delete(np.abs(cosines), OBJECT_WORDS.index(asked)).max() < 0.5


def test_every_answer_sits_in_its_cells_of_its_segment(probe_task):
    generator, questions, store = probe_task
    config = generator.config
    for row in questions["test"].select(range(40)):
        patches = store[row["video_id"]]["patch_features"].astype(np.float32)
        patches /= np.linalg.norm(patches, axis=-1, keepdims=True)
        segment, (object_cell, item_cell) = row["evidence_segments"][0], row["evidence_cells"]
        frames = slice(segment * config.frames_per_segment, (segment + 1) * config.frames_per_segment)
        assert item_cell in neighbour_cells(object_cell, config.grid_size)
        if row["question_type"] == "beside":
            assert row["answer_cell"] == item_cell
            item = generator.item_vectors[ITEM_WORDS.index(row["answer"])]
            similarity = patches @ item  # [frames, patches]
            assert (similarity[frames].argmax(axis=1) == item_cell).all() and similarity[frames].min(axis=0)[
                item_cell
            ] > 0.9
            # the item is nowhere else in the video, and no frame embedding shows it
            assert np.delete(similarity, np.arange(frames.start, frames.stop), axis=0).max() < 0.9
            frame_embeddings = store[row["video_id"]]["frame_features"].astype(np.float32)
            frame_embeddings /= np.linalg.norm(frame_embeddings, axis=-1, keepdims=True)
            assert np.abs(frame_embeddings @ item).max() < 0.5
        else:
            assert row["answer_cell"] == object_cell
            assert row["answer"] == QUADRANT_WORDS[quadrant_of(object_cell, config.grid_size)]


def test_generation_is_deterministic_and_scales():
    small = PatchTaskConfig(videos_per_split=(4, 2, 2))
    first, first_features = PatchVideoQA(small).generate()
    second, second_features = PatchVideoQA(small).generate()
    assert first["train"].to_list() == second["train"].to_list()
    np.testing.assert_array_equal(
        np.asarray(first_features.with_format("numpy")["patch_features"]),
        np.asarray(second_features.with_format("numpy")["patch_features"]),
    )
    scaled, _ = PatchVideoQA(PatchTaskConfig(videos_per_split=(4, 2, 2), scale=2.5)).generate()
    assert [len(scaled[split]) for split in ("train", "validation", "test")] == [20, 10, 10]
    assert patch_answer_vocabulary(small) == list(ITEM_WORDS) + list(QUADRANT_WORDS)
    assert patch_answer_vocabulary(PatchTaskConfig(question_kinds=("where",))) == list(QUADRANT_WORDS)


def test_grid_helpers():
    assert neighbour_cells(0, 4) == [4, 1] and sorted(neighbour_cells(5, 4)) == [1, 4, 6, 9]
    assert [quadrant_of(cell, 4) for cell in (0, 3, 12, 15, 5, 10)] == [0, 1, 2, 3, 0, 3]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"question_kinds": ("together",)}, "question_kinds=('together',): expected some of"),
        ({"num_events": 1}, "num_events=1 must be in [2, 8]"),
        ({"grid_size": 3}, "grid_size=3: expected an even size"),
        ({"question_alignment": 0.0}, "question_alignment=0.0: expected a cosine in (0, 1]"),
        ({"scale": 0}, "scale=0: expected a positive factor"),
    ],
)
def test_bad_task_settings_are_refused(overrides, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        PatchTaskConfig(**overrides)
