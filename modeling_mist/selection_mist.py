"""What MIST looked at when it answered one question: the selection record and the video's timing.

`MistSelection.from_outputs(outputs, index, timing)` reads it from a model output; `to_json()` writes
it as `{"selection": [per ISTA layer], "video": timing}`, the shape the pipeline returns
(`return_selection=True`) and `mist predict` prints; `from_json` reads that back. Per layer it holds
every segment's score and the kept segments, best first, each with its time span and its frames, a
frame with its time, its kept patch cells and every patch candidate's score.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from .video_decoding_mist import sample_frame_indices

# The per-layer fields of a MIST output that describe its selection.
SELECTION_FIELDS = ("segment_indices", "segment_scores", "frame_indices", "patch_indices", "patch_scores")
SCORE_DIGITS = 5  # scores are rounded to this many decimals in the record


def video_timing(
    total_frames: int, sampled_frames: Sequence[int], num_segments: int, fps: float | None = None
) -> dict:
    """When each sampled frame and each segment happens, in seconds when `fps` is known, else in source frames.

    `sampled_frames` `[F]` are the source-frame indices MIST sees (`sample_frame_indices`). Segment `s`
    covers the sampling intervals of sampled frames `[s * F/S, (s + 1) * F/S)`, so its start and end are
    interval bounds: the same `linspace(0, total_frames, F + 1)` bounds the frames were sampled from.
    Returns `{"fps", "duration", "total_frames", "unit", "frame_times" [F], "segment_bounds" [S, 2],
    "segment_frame_bounds" [S, 2]}` (`unit` is `"seconds"` or `"frames"`; frame bounds are `[start, end)`).
    """
    num_frames = len(sampled_frames)
    if num_frames % num_segments:
        raise ValueError(f"{num_frames} sampled frames do not split into {num_segments} equal segments")
    frames_per_segment = num_frames // num_segments
    bounds = np.linspace(0, total_frames, num_frames + 1).astype(np.int64)  # as in sample_frame_indices
    frame_bounds = [
        [int(bounds[segment * frames_per_segment]), int(bounds[(segment + 1) * frames_per_segment])]
        for segment in range(num_segments)
    ]
    scale = 1.0 / fps if fps else 1.0
    return {
        "fps": float(fps) if fps else None,
        "duration": round(total_frames * scale, 4) if fps else None,
        "total_frames": int(total_frames),
        "unit": "seconds" if fps else "frames",
        "frame_times": [round(int(index) * scale, 4) for index in sampled_frames],
        "segment_bounds": [[round(start * scale, 4), round(end * scale, 4)] for start, end in frame_bounds],
        "segment_frame_bounds": frame_bounds,
    }


def frame_timing(num_frames: int, num_segments: int, fps: float | None = None) -> dict:
    """`video_timing` when only the sampled frames are known (stored features): times are sampled-frame positions
    (divided by `fps` when it is given)."""
    return video_timing(num_frames, sample_frame_indices(num_frames, num_frames), num_segments, fps)


def _scores(values) -> list[float]:
    return [round(score, SCORE_DIGITS) for score in values]


@dataclass
class KeptFrame:
    """A frame of a kept segment."""

    frame: int  # its sampled-frame index in [0, F)
    time: float  # when it is, in the timing's unit
    patches: list[int]  # the kept patch candidates, best first
    patch_scores: list[float] | None  # every candidate's score [P] (+ the whole frame); None without patch selection


@dataclass
class KeptSegment:
    """A segment an ISTA layer kept."""

    segment: int  # its index in [0, S)
    score: float  # its selection score
    start: float  # where its frames' sampling intervals begin and end, in the timing's unit
    end: float
    frames: list[KeptFrame]  # its F/S frames, in time order


@dataclass
class LayerSelection:
    """What one ISTA layer kept."""

    layer: int  # 1 for the first ISTA layer
    segment_scores: list[float]  # every segment's score [S]
    segments: list[KeptSegment]  # the kept segments, best first

    @property
    def frames(self) -> list[KeptFrame]:
        """The kept segments' frames, segment by segment (best first), each segment's in time order."""
        return [frame for segment in self.segments for frame in segment.frames]


@dataclass
class MistSelection:
    """What MIST kept for one question, per ISTA layer, and the timing of its video (`video_timing`)."""

    layers: list[LayerSelection]
    video: dict

    @classmethod
    def from_outputs(cls, outputs, index: int, timing: dict) -> "MistSelection":
        """The selection of example `index` of a batch.

        `outputs` holds the model's per-layer `segment_indices [B, k]`, `segment_scores [B, S]`,
        `frame_indices [B, k, F/S]`, `patch_indices [B, k, F/S, j]` and `patch_scores [B, k, F/S, C]` or None
        (attributes or keys); `timing` is the `video_timing` of the video.
        """
        # a ModelOutput (a dict) leaves out the fields that are None, such as patch_scores without patch selection
        read = outputs.get if isinstance(outputs, dict) else partial(getattr, outputs)
        values = {name: read(name) for name in SELECTION_FIELDS}
        if values["patch_scores"] is None:  # no patch selection: every candidate kept, none scored
            values["patch_scores"] = [None] * len(values["segment_indices"])
        per_layer = zip(*(values[name] for name in SELECTION_FIELDS))
        layers = []
        for number, (segment_indices, segment_scores, frame_indices, patch_indices, patch_scores) in enumerate(
            per_layer, start=1
        ):
            scores = segment_scores[index].float().tolist()  # [S]
            segments = []
            for rank, segment in enumerate(segment_indices[index].tolist()):
                frames = [
                    KeptFrame(
                        frame=frame,
                        time=timing["frame_times"][frame],
                        patches=patch_indices[index, rank, position].tolist(),
                        patch_scores=None
                        if patch_scores is None
                        else _scores(patch_scores[index, rank, position].float().tolist()),
                    )
                    for position, frame in enumerate(frame_indices[index, rank].tolist())
                ]
                start, end = timing["segment_bounds"][segment]
                segments.append(KeptSegment(segment, round(scores[segment], SCORE_DIGITS), start, end, frames))
            layers.append(LayerSelection(number, _scores(scores), segments))
        return cls(layers, dict(timing))

    def to_json(self) -> dict:
        """`{"selection": [per layer {"layer", "segment_scores", "segments": [{"segment", "score", "start", "end",
        "frames": [{"frame", "time", "patches", "patch_scores"}]}]}], "video": timing}`: plain lists and numbers."""
        return {"selection": [asdict(layer) for layer in self.layers], "video": dict(self.video)}

    @classmethod
    def from_json(cls, data: dict) -> "MistSelection":
        """The record of `to_json()`'s dict (or of a pipeline result with `"selection"` and `"video"`)."""
        layers = [
            LayerSelection(
                layer["layer"],
                list(layer["segment_scores"]),
                [
                    KeptSegment(
                        segment["segment"],
                        segment["score"],
                        segment["start"],
                        segment["end"],
                        [KeptFrame(**frame) for frame in segment["frames"]],
                    )
                    for segment in layer["segments"]
                ],
            )
            for layer in data["selection"]
        ]
        return cls(layers, dict(data["video"]))


__all__ = [
    "KeptFrame",
    "KeptSegment",
    "LayerSelection",
    "MistSelection",
    "SELECTION_FIELDS",
    "frame_timing",
    "video_timing",
]
