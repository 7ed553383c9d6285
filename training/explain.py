"""Draw what MIST looked at: the sampled frames as a strip, the segments and patches each ISTA layer kept."""

from pathlib import Path

import numpy as np

LAYER_COLORS = ("#e6550d", "#3182bd", "#31a354", "#756bb1")  # one per ISTA layer
FRAMES_PER_ROW = 16


def selections_of(outputs, index: int = 0) -> list[dict]:
    """Per ISTA layer, the kept segments, frames and patches of one example of a model output.

    Returns `[{"segments": [k], "segment_scores": [S], "frames": [k * F/S], "patches": {frame: [j]}}]`.
    """
    layers = []
    for segment_indices, segment_scores, frame_indices, patch_indices in zip(
        outputs.segment_indices, outputs.segment_scores, outputs.frame_indices, outputs.patch_indices
    ):
        frames = frame_indices[index].reshape(-1).tolist()  # [k * frames_per_segment]
        patches = patch_indices[index].reshape(len(frames), -1).tolist()  # [k * frames_per_segment, j]
        layers.append(
            {
                "segments": segment_indices[index].tolist(),
                "segment_scores": [round(float(score), 4) for score in segment_scores[index]],
                "frames": frames,
                "patches": {frame: kept for frame, kept in zip(frames, patches)},
            }
        )
    return layers


def placeholder_frames(num_frames: int, size: int = 64) -> np.ndarray:
    """Grey frames `[F, size, size, 3]` for when only stored features (no pixels) are at hand."""
    return np.full((num_frames, size, size, 3), 215, dtype=np.uint8)


def draw_explanation(
    frames: np.ndarray,
    layers: list[dict],
    num_segments: int,
    grid_size: int,
    path: str | Path,
    title: str = "",
    answers: list[tuple[str, float]] | None = None,
) -> Path:
    """Save a PNG: the frame strip with each layer's kept segments (coloured brackets) and kept patches
    (coloured cell outlines on the kept frames), and each layer's segment scores as bars.

    `frames` `[F, H, W, 3]` uint8; the patch grid covers the whole frame (crops of the resized frame).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    frames = np.asarray(frames)
    num_frames, height, width = frames.shape[:3]
    frames_per_segment = num_frames // num_segments
    num_rows = -(-num_frames // FRAMES_PER_ROW)
    per_row = min(num_frames, FRAMES_PER_ROW)
    num_layers = len(layers)

    figure = plt.figure(figsize=(per_row * 0.9 + 1, num_rows * 1.25 + 1.6 + 0.6 * (answers is not None)), dpi=100)
    strip_height = num_rows / (num_rows + 1.3)
    strip = figure.add_axes((0.02, 1 - strip_height, 0.96, strip_height - 0.12))
    bars = figure.add_axes((0.06, 0.12, 0.9, 1 - strip_height - 0.2))

    gap = 0.08 * width
    for frame_index in range(num_frames):
        row, column = divmod(frame_index, per_row)
        left, top = column * (width + gap), row * (height * 1.35)
        strip.imshow(frames[frame_index], extent=(left, left + width, top + height, top), interpolation="nearest")
        strip.text(left + width / 2, top + height * 1.08, str(frame_index), ha="center", va="top", fontsize=6)
        for layer_number, layer in enumerate(layers):
            kept = layer["patches"].get(frame_index)
            if kept is None:
                continue
            inset = (layer_number + 1) * 0.06 * width / grid_size
            cell_w, cell_h = width / grid_size, height / grid_size
            for patch in kept:
                patch_row, patch_column = divmod(int(patch), grid_size)
                strip.add_patch(
                    Rectangle(
                        (left + patch_column * cell_w + inset, top + patch_row * cell_h + inset),
                        cell_w - 2 * inset,
                        cell_h - 2 * inset,
                        fill=False,
                        edgecolor=LAYER_COLORS[layer_number % len(LAYER_COLORS)],
                        linewidth=1.2,
                    )
                )
        # segment boundaries: a tick before the first frame of each segment
        if frame_index % frames_per_segment == 0:
            strip.plot([left - gap / 2] * 2, [top - height * 0.05, top + height * 1.05], color="black", linewidth=0.6)
    for layer_number, layer in enumerate(layers):
        color = LAYER_COLORS[layer_number % len(LAYER_COLORS)]
        for segment in layer["segments"]:
            first = segment * frames_per_segment
            for frame_index in range(first, first + frames_per_segment):
                row, column = divmod(frame_index, per_row)
                left, top = column * (width + gap), row * (height * 1.35)
                offset = (layer_number + 1) * 0.05 * height
                strip.add_patch(
                    Rectangle((left - gap / 2, top - offset), width + gap, 0.04 * height, color=color, linewidth=0)
                )
    strip.set_xlim(-gap, per_row * (width + gap))
    strip.set_ylim(num_rows * height * 1.35, -height * 0.3)
    strip.axis("off")

    bar_width = 0.8 / max(num_layers, 1)
    for layer_number, layer in enumerate(layers):
        positions = np.arange(num_segments) + (layer_number - (num_layers - 1) / 2) * bar_width
        bars.bar(
            positions,
            layer["segment_scores"],
            width=bar_width,
            color=LAYER_COLORS[layer_number % len(LAYER_COLORS)],
            label=f"ISTA layer {layer_number + 1}: kept segments {layer['segments']}",
        )
    bars.set_xticks(range(num_segments))
    bars.set_xlabel("segment", fontsize=7)
    bars.set_ylabel("selection score", fontsize=7)
    bars.tick_params(labelsize=6)
    bars.legend(fontsize=6, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=num_layers, frameon=False)

    heading = title
    if answers:
        heading += "\n" + "   ".join(f"{answer} ({score:.2f})" for answer, score in answers)
    figure.suptitle(heading, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
