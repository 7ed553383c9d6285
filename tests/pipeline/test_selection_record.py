"""The selection record (`modeling_mist.selection_mist.MistSelection`): read from a model output, written as JSON
and read back, and the same record behind the explanation picture's layers."""

import json

import pytest
import torch

from modeling_mist import MistForVideoQuestionAnswering
from modeling_mist.selection_mist import KeptFrame, MistSelection, video_timing
from tests.modeling.mist_testing import random_inputs, tiny_config
from training.explain import selection_layers, selection_of, selections_of, selections_of_result


@pytest.fixture(scope="module")
def outputs():
    model = MistForVideoQuestionAnswering(tiny_config()).eval()
    with torch.no_grad():
        return model(**random_inputs(model.config, batch_size=2))


TIMING = video_timing(80, [5 + 10 * frame for frame in range(8)], 4, fps=10)  # 8 s, 2 s segments


@pytest.mark.parametrize("index", [0, 1])
def test_the_record_holds_what_each_layer_kept_with_times_and_scores(outputs, index):
    selection = MistSelection.from_outputs(outputs, index, TIMING)
    assert [layer.layer for layer in selection.layers] == [1, 2] and selection.video == TIMING
    for layer, segment_indices, segment_scores, frame_indices, patch_indices, patch_scores in zip(
        selection.layers, outputs.segment_indices, outputs.segment_scores, outputs.frame_indices,
        outputs.patch_indices, outputs.patch_scores, strict=True,
    ):  # fmt: skip
        assert layer.segment_scores == pytest.approx(segment_scores[index].tolist(), abs=1e-5)
        assert [segment.segment for segment in layer.segments] == segment_indices[index].tolist()
        for rank, segment in enumerate(layer.segments):
            assert (segment.start, segment.end) == (2.0 * segment.segment, 2.0 * segment.segment + 2.0)
            assert segment.score == round(layer.segment_scores[segment.segment], 5)
            assert [frame.frame for frame in segment.frames] == frame_indices[index, rank].tolist()
            for position, frame in enumerate(segment.frames):
                assert frame.time == 0.5 + frame.frame
                assert frame.patches == patch_indices[index, rank, position].tolist()
                assert frame.patch_scores == pytest.approx(patch_scores[index, rank, position].tolist(), abs=1e-5)
        assert layer.frames == [frame for segment in layer.segments for frame in segment.frames]


def test_the_json_is_plain_and_reads_back_to_the_same_record(outputs):
    selection = MistSelection.from_outputs(outputs, 0, TIMING)
    written = selection.to_json()
    assert set(written) == {"selection", "video"}
    assert set(written["selection"][0]) == {"layer", "segment_scores", "segments"}
    assert set(written["selection"][0]["segments"][0]) == {"segment", "score", "start", "end", "frames"}
    assert set(written["selection"][0]["segments"][0]["frames"][0]) == {"frame", "time", "patches", "patch_scores"}
    assert json.loads(json.dumps(written)) == written  # only lists, numbers and None
    assert MistSelection.from_json(json.loads(json.dumps(written))) == selection
    assert isinstance(MistSelection.from_json(written).layers[0].segments[0].frames[0], KeptFrame)


def test_the_pictures_layers_are_the_records(outputs):
    selection = selection_of(outputs, 1, TIMING)
    assert selection == MistSelection.from_outputs(outputs, 1, TIMING)
    layers = selection_layers(selection)
    assert selections_of(outputs, 1, TIMING) == layers
    assert selections_of_result(selection.to_json()["selection"]) == layers
    for layer, drawn in zip(selection.layers, layers, strict=True):
        assert drawn["segments"] == [segment.segment for segment in layer.segments]
        assert drawn["frames"] == [frame.frame for frame in layer.frames]
        assert drawn["patches"] == {frame.frame: frame.patches for frame in layer.frames}
        assert drawn["frame_times"] == {frame.frame: frame.time for frame in layer.frames}
    # without a video's timing, times are sampled-frame positions
    untimed = selection_of(outputs, 1)
    assert untimed.video["unit"] == "frames"
    assert all(frame.time == frame.frame for layer in untimed.layers for frame in layer.frames)
