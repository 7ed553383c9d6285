"""The synthetic demo task: deterministic, answerable from the video, not from the question alone."""

from collections import Counter, defaultdict

import numpy as np

from tests.training.training_testing import tiny_task_config
from training.demo.synthetic_dataset import OBJECT_WORDS, SyntheticVideoQA, answer_vocabulary


def test_generation_is_deterministic():
    config = tiny_task_config(train_videos=6, eval_videos=2)
    first_questions, first_features = SyntheticVideoQA(config).generate()
    second_questions, second_features = SyntheticVideoQA(config).generate()
    for split in ("train", "validation", "test"):
        assert first_questions[split].to_list() == second_questions[split].to_list()
    np.testing.assert_array_equal(
        np.asarray(first_features.with_format("numpy")["patch_features"]),
        np.asarray(second_features.with_format("numpy")["patch_features"]),
    )
    other_seed, _ = SyntheticVideoQA(tiny_task_config(train_videos=6, eval_videos=2, seed=1)).generate()
    assert other_seed["train"]["answer"] != first_questions["train"]["answer"]


def test_the_answer_is_in_the_evidence_cells_of_the_evidence_segment():
    config = tiny_task_config(train_videos=10, eval_videos=2)
    generator = SyntheticVideoQA(config)
    questions, features = generator.generate()
    store = {row["video_id"]: row for row in features.with_format("numpy")}
    frames_per_segment = config.num_frames // config.num_segments
    for row in questions["train"]:
        patches = store[row["video_id"]]["patch_features"].astype(np.float32)  # [frames, patches, dim]
        patches /= np.linalg.norm(patches, axis=-1, keepdims=True)
        answer_vector = generator.object_vectors[OBJECT_WORDS.index(row["answer"])]
        segment = row["evidence_segments"][0]
        frames = slice(segment * frames_per_segment, (segment + 1) * frames_per_segment)
        similarity = patches[frames] @ answer_vector  # [frames_per_segment, patches]
        best_cells = set(similarity.argmax(axis=1).tolist())
        assert best_cells <= set(row["evidence_cells"]) and similarity.max() > 0.9
        # nowhere else in the video does the answer show up
        elsewhere = np.delete(patches, np.arange(frames.start, frames.stop), axis=0) @ answer_vector
        assert elsewhere.max() < 0.9


def test_question_alone_is_near_chance():
    """The best question-only guess (the most frequent training answer per question text) is at chance."""
    config = tiny_task_config(train_videos=400, eval_videos=150)
    questions, _ = SyntheticVideoQA(config).generate()
    answers_by_question = defaultdict(Counter)
    for row in questions["train"]:
        answers_by_question[row["question"]][row["answer"]] += 1
    test = questions["test"]
    correct = sum(
        answers_by_question[row["question"]].most_common(1)[0][0] == row["answer"]
        for row in test
        if row["question"] in answers_by_question
    )
    chance = 1 / (len(OBJECT_WORDS) - 1)
    assert len(test) == 300
    assert correct / len(test) < 2.5 * chance  # 1/15 = 6.7%; a leak would give far more
    assert answer_vocabulary(config) == list(OBJECT_WORDS)


def test_temporal_kinds_are_balanced():
    config = tiny_task_config(train_videos=200, eval_videos=2, question_kinds=("when", "order"))
    questions, _ = SyntheticVideoQA(config).generate()
    counts = Counter(zip(questions["train"]["question_type"], questions["train"]["answer"]))
    assert set(counts) == {("when", "beginning"), ("when", "end"), ("order", "before"), ("order", "after")}
    assert min(counts.values()) > 0.35 * len(questions["train"]) / 2
    assert answer_vocabulary(config) == list(OBJECT_WORDS) + ["beginning", "end", "before", "after"]
