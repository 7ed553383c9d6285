"""Draw what MIST looked at: per ISTA layer, how it scored the video's segments over time and, on the
frames it kept, how it scored their patches.

The picture (`draw_explanation`), top to bottom: the question and the ranked answers; the sampled
frames as a film strip on a time axis; then one row per ISTA layer with its segment scores as a
timeline aligned with the strip (strength = score, kept segments outlined in the layer's colour)
and its kept frames, large, with the patch scores as a heatmap over each frame (kept patches
outlined); a legend saying what is shown.
"""

import textwrap
from pathlib import Path

import numpy as np

from modeling_mist.pipeline_mist import describe_selection, video_timing
from modeling_mist.video_decoding_mist import load_video_frames, sample_frame_indices

LAYER_COLORS = ("#e6550d", "#3182bd", "#31a354", "#756bb1")  # one per ISTA layer: label, timeline, outlines
HEATMAP = "inferno"  # colour map of the patch scores
KEPT_FRAMES_PER_LINE = 8
KEPT_FRAME_INCHES = 2.0  # width of a kept frame (at DPI, 200 pixels)
DPI = 100


def frame_timing(num_frames: int, num_segments: int) -> dict:
    """`video_timing` when only the sampled frames are known: times are sampled-frame positions."""
    return video_timing(num_frames, sample_frame_indices(num_frames, num_frames), num_segments)


def selections_of(outputs, index: int = 0, timing: dict | None = None) -> list[dict]:
    """Per ISTA layer, the kept segments, frames and patches of one example of a model output.

    Returns `[{"segments": [k], "segment_scores": [S], "frames": [k * F/S], "patches": {frame: [j]},
    "patch_scores": {frame: [P]}, "segment_times": {segment: [start, end]}, "frame_times": {frame: t}}]`;
    times are in `timing["unit"]` (seconds from `video_timing` of the video, else sampled-frame positions).
    """
    if timing is None:
        num_frames = outputs.frame_indices[0].shape[-1] * outputs.segment_scores[0].shape[-1]
        timing = frame_timing(num_frames, outputs.segment_scores[0].shape[-1])
    return selections_of_result(describe_selection(outputs, index, timing))


def selections_of_result(selection: list[dict]) -> list[dict]:
    """`selections_of`'s layers from the `"selection"` of a pipeline result (`return_selection=True`)."""
    layers = []
    for layer in selection:
        frames = [frame for segment in layer["segments"] for frame in segment["frames"]]
        layers.append(
            {
                "segments": [segment["segment"] for segment in layer["segments"]],
                "segment_scores": layer["segment_scores"],
                "frames": [frame["frame"] for frame in frames],
                "patches": {frame["frame"]: frame["patches"] for frame in frames},
                "patch_scores": {frame["frame"]: frame["patch_scores"] for frame in frames},
                "segment_times": {
                    segment["segment"]: [segment["start"], segment["end"]] for segment in layer["segments"]
                },
                "frame_times": {frame["frame"]: frame["time"] for frame in frames},
            }
        )
    return layers


def placeholder_frames(num_frames: int, size: int = 64) -> np.ndarray:
    """Grey frames `[F, size, size, 3]` for when only stored features (no pixels) are at hand."""
    return np.full((num_frames, size, size, 3), 215, dtype=np.uint8)


def explanation_frames(video, num_frames: int, num_segments: int) -> tuple[np.ndarray, dict]:
    """The sampled frames `[F, H, W, 3]` of `video` (path, frame folder or frames) and their `video_timing`;
    grey placeholders and sampled-frame positions when `video` is None (stored features only)."""
    if video is None:
        return placeholder_frames(num_frames), frame_timing(num_frames, num_segments)
    frames, metadata = load_video_frames(
        video, lambda metadata: sample_frame_indices(metadata.total_num_frames, num_frames)
    )
    timing = video_timing(metadata.total_num_frames, metadata.frames_indices, num_segments, metadata.fps)
    return frames, timing


def format_time(value: float, unit: str) -> str:
    """`12.4s`, `1:05.0` past a minute, or `frame 120` when the video's frame rate is unknown."""
    if unit != "seconds":
        return f"frame {int(value)}"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}:{seconds:04.1f}"


def _answer_text(answers) -> str:
    pairs = [(item["answer"], item["score"]) if isinstance(item, dict) else tuple(item) for item in answers]
    return "   ".join(f"{number}. {answer} ({score:.2f})" for number, (answer, score) in enumerate(pairs, start=1))


def draw_explanation(
    frames: np.ndarray,
    layers: list[dict],
    num_segments: int,
    grid_size: int,
    path: str | Path,
    title: str = "",
    answers: list | None = None,
    timing: dict | None = None,
) -> Path:
    """Save the explanation PNG of one answer (see the module docstring) and return its path.

    `frames` `[F, H, W, 3]` uint8 are the sampled frames (the patch grid covers the whole frame);
    `layers` come from `selections_of` (or `selections_of_result`); `answers` are `(answer, score)`
    pairs or `{"answer", "score"}` dicts; `timing` is `video_timing` of the video (the pipeline's
    `result["video"]`) for times in seconds, else times are sampled-frame positions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    frames = np.asarray(frames)
    num_frames, height, width = frames.shape[:3]
    timing = timing or frame_timing(num_frames, num_segments)
    frames_per_segment = num_frames // num_segments
    aspect = height / width
    kept_per_layer = max(len(layer["frames"]) for layer in layers)
    per_line = min(kept_per_layer, KEPT_FRAMES_PER_LINE)
    lines = -(-kept_per_layer // per_line)

    # Layout in inches, top to bottom; every axes is placed from these numbers.
    label_width, margin = 1.25, 0.25
    content_width = max(per_line * KEPT_FRAME_INCHES, 7.0)
    frame_width = min(KEPT_FRAME_INCHES, content_width / per_line)
    thumb_width = content_width / num_frames
    header, strip_height = 0.55 + 0.3 * bool(answers), thumb_width * aspect + 0.35
    timeline_height, kept_height = 0.5, lines * (frame_width * aspect + 0.3)
    layer_height = timeline_height + 0.3 + kept_height
    legend_height = 0.75
    figure_width = label_width + content_width + margin
    figure_height = header + strip_height + len(layers) * layer_height + legend_height
    figure = plt.figure(figsize=(figure_width, figure_height), dpi=DPI)

    def axes(left: float, top: float, box_width: float, box_height: float):
        """Axes at `left`/`top` inches from the figure's top-left corner."""
        bottom = figure_height - top - box_height
        return figure.add_axes(
            (left / figure_width, bottom / figure_height, box_width / figure_width, box_height / figure_height)
        )

    figure.text(0.5 / figure_width, 1 - 0.3 / figure_height, title, fontsize=12, weight="bold", va="center")
    if answers:
        figure.text(
            0.5 / figure_width, 1 - 0.65 / figure_height, "answers:  " + _answer_text(answers), fontsize=10, va="center"
        )
    patch_maximum = max(
        (max(scores) for layer in layers for scores in layer.get("patch_scores", {}).values() if scores), default=1.0
    )
    norm = Normalize(0.0, max(patch_maximum, 1e-6))
    colour_map = colormaps[HEATMAP]
    bar = axes(figure_width - margin - 2.0, 0.32, 1.9, 0.12)
    colour_bar = figure.colorbar(ScalarMappable(norm=norm, cmap=colour_map), cax=bar, orientation="horizontal")
    colour_bar.ax.tick_params(labelsize=6, length=2, pad=1)
    colour_bar.ax.set_title("patch selection score", fontsize=7, pad=2)

    unit = timing["unit"]
    bounds = timing["segment_bounds"]
    boundary_labels = [format_time(start, unit) for start, _ in bounds] + [format_time(bounds[-1][1], unit)]

    # the sampled frames on the video's time axis
    top = header
    strip = axes(label_width, top, content_width, thumb_width * aspect)
    for frame in range(num_frames):
        strip.imshow(frames[frame], extent=(frame, frame + 1, 1, 0), interpolation="nearest")
    for segment in range(1, num_segments):
        strip.axvline(segment * frames_per_segment, color="white", linewidth=2)
    strip.set_xlim(0, num_frames)
    strip.set_ylim(1, 0)
    strip.set_aspect("auto")
    strip.set_xticks([segment * frames_per_segment for segment in range(num_segments + 1)], boundary_labels, fontsize=7)
    strip.set_yticks([])
    strip.tick_params(length=2, pad=1)
    figure.text(
        0.25 / figure_width,
        1 - (top + thumb_width * aspect / 2) / figure_height,
        "video\n(sampled\nframes)",
        fontsize=8,
        va="center",
    )

    top += strip_height
    for layer_number, layer in enumerate(layers):
        colour = LAYER_COLORS[layer_number % len(LAYER_COLORS)]
        label = axes(0.1, top, label_width - 0.25, timeline_height)
        label.add_patch(Rectangle((0, 0), 1, 1, color=colour))
        label.text(
            0.5,
            0.5,
            f"ISTA layer {layer_number + 1}",
            color="white",
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
        )
        label.set_axis_off()

        # segment scores over time: fill strength = score relative to the layer's best segment
        scores = np.asarray(layer["segment_scores"], dtype=float)
        best = max(scores.max(), 1e-6)
        timeline = axes(label_width, top, content_width, timeline_height)
        for segment, score in enumerate(scores):
            left = segment * frames_per_segment
            kept = segment in layer["segments"]
            timeline.add_patch(
                Rectangle(
                    (left, 0),
                    frames_per_segment,
                    1,
                    facecolor=colour,
                    alpha=min(1.0, 0.08 + 0.92 * score / best),
                    linewidth=0,
                )
            )
            if kept:
                rank = layer["segments"].index(segment) + 1
                timeline.add_patch(
                    Rectangle(
                        (left + 0.06, 0.04), frames_per_segment - 0.12, 0.92, fill=False, edgecolor=colour, linewidth=3
                    )
                )
            text = f"{score:.2f}" + (f"\nkept #{rank}" if kept else "")
            timeline.text(left + frames_per_segment / 2, 0.5, text, ha="center", va="center", fontsize=7,
                          color="white" if score / best > 0.6 else "black")  # fmt: skip
        timeline.set_xlim(0, num_frames)
        timeline.set_ylim(0, 1)
        timeline.set_xticks(
            [segment * frames_per_segment for segment in range(num_segments + 1)], boundary_labels, fontsize=7
        )
        timeline.set_yticks([])
        timeline.tick_params(length=2, pad=1)
        for side in ("top", "right", "left"):
            timeline.spines[side].set_visible(False)

        # the kept frames, patch scores as a heatmap over each
        kept_top = top + timeline_height + 0.3
        for position, frame in enumerate(layer["frames"]):
            line, column = divmod(position, per_line)
            frame_top = kept_top + line * (frame_width * aspect + 0.3)
            picture = axes(
                label_width + column * frame_width + 0.04, frame_top, frame_width - 0.08, (frame_width - 0.08) * aspect
            )
            picture.imshow(frames[frame], extent=(0, width, height, 0), interpolation="nearest")
            num_patches = grid_size * grid_size
            patch_scores = layer.get("patch_scores", {}).get(frame)
            if patch_scores is not None:
                # the grid's P scores, row-major; a further candidate is the whole frame (frame_as_patch_candidate)
                grid = norm(np.asarray(patch_scores[:num_patches], dtype=float).reshape(grid_size, grid_size))
                heat = colour_map(grid)  # [G, G, 4]
                heat[..., 3] = 0.6 * grid  # a patch scored near 0 leaves the frame as it is
                picture.imshow(heat, extent=(0, width, height, 0), interpolation="nearest")
            cell_width, cell_height = width / grid_size, height / grid_size
            kept = [int(patch) for patch in layer["patches"].get(frame, [])]
            for patch in kept if patch_scores is not None else []:  # without patch selection every cell is kept
                if patch >= num_patches:
                    continue
                row, col = divmod(patch, grid_size)
                picture.add_patch(
                    Rectangle(
                        (col * cell_width + 1, row * cell_height + 1),
                        cell_width - 2,
                        cell_height - 2,
                        fill=False,
                        edgecolor=colour,
                        linewidth=1.0,
                        linestyle=(0, (3, 2)),
                    )
                )  # fmt: skip  (a thin dashed mark: the heatmap is the picture, the mark says "kept")
            notes = []
            if patch_scores is not None and len(patch_scores) > num_patches:
                notes.append(f"whole frame {patch_scores[num_patches]:.2f}" + (" kept" if num_patches in kept else ""))
            if patch_scores is None:
                notes.append("all patches kept")
            picture.set_xlim(0, width)
            picture.set_ylim(height, 0)
            picture.set_xticks([])
            picture.set_yticks([])
            for spine in picture.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2)
            segment = frame // frames_per_segment
            rank = layer["segments"].index(segment) + 1 if segment in layer["segments"] else "?"
            picture.set_title(
                " · ".join(
                    [f"kept #{rank}: segment {segment}", format_time(timing["frame_times"][frame], unit), *notes]
                ),
                fontsize=7,
                pad=2,
            )
        top += layer_height

    # legend: what each mark means, wrapped to the figure's width
    legend = [
        (
            "Timeline rows: each segment's selection score (its share of the layer's attention over segments); "
            "stronger colour = higher score; outlined = kept, ranked."
        ),
        (
            "Kept frames: the frames of the kept segments, each patch tinted by its selection score (colour bar, "
            "top right); dashed cells = kept patches."
        ),
        "Times: "
        + ("seconds into the video." if unit == "seconds" else "sampled-frame positions (frame rate unknown)."),
    ]
    characters = int((figure_width - 0.7) * 17)  # about 17 characters per inch at 7.5 points
    legend_text = "\n".join(textwrap.fill(line, characters) for line in legend)
    figure.text(0.5 / figure_width, (legend_height - 0.1) / figure_height, legend_text, fontsize=7.5, va="top")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
