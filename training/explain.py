"""Draw what MIST looked at: per ISTA layer, how it scored the video's segments over time and, on the
frames it kept, how it scored their patches.

The picture (`draw_explanation`), top to bottom: the question and the ranked answers; the sampled
frames as a film strip on a time axis; then one row per ISTA layer with its segment scores as a
timeline aligned with the strip (strength = score, kept segments outlined in the layer's colour)
and its kept frames, large, with the patch scores as a heatmap over each frame (kept patches
outlined); a legend saying what is shown.
"""

import logging
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from modeling_mist.selection_mist import MistSelection, frame_timing, video_timing
from modeling_mist.video_decoding_mist import load_video_frames, sample_frame_indices

LAYER_COLORS = ("#e6550d", "#3182bd", "#31a354", "#756bb1")  # one per ISTA layer: label, timeline, outlines
HEATMAP = "inferno"  # colour map of the patch scores
KEPT_FRAMES_PER_LINE = 8
KEPT_FRAME_INCHES = 2.0  # width of a kept frame (at DPI, 200 pixels)
DPI = 100
# Fonts tried after matplotlib's own for the question and answers, in order, where installed: CJK, then emoji.
FALLBACK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans CJK TC", "Source Han Sans SC",
    "WenQuanYi Zen Hei", "Droid Sans Fallback", "Microsoft YaHei", "PingFang SC", "Hiragino Sans",
    "Arial Unicode MS", "Noto Color Emoji", "Noto Emoji", "Segoe UI Emoji", "Apple Color Emoji", "Symbola",
)  # fmt: skip

logger = logging.getLogger(__name__)


@cache
def _installed_fonts() -> dict[str, frozenset[int]]:
    """The characters (code points) of matplotlib's default font and of each installed `FALLBACK_FONTS`."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    default = font_manager.findfont(font_manager.FontProperties())  # rcParams' family: DejaVu Sans unless set
    paths = {FT2Font(default).family_name: default}
    for entry in font_manager.fontManager.ttflist:
        if entry.name in FALLBACK_FONTS:
            paths.setdefault(entry.name, entry.fname)
    fonts = {}
    for name, path in paths.items():
        try:
            fonts[name] = frozenset(FT2Font(path).get_charmap())
        except (OSError, RuntimeError, ValueError):  # a font file matplotlib cannot read
            continue
    return fonts


def text_fonts(text: str) -> list[str]:
    """The font families to draw `text` with (matplotlib falls back along the list, glyph by glyph); warns naming
    the characters no installed font has, which would be drawn as empty boxes."""
    fonts = _installed_fonts()
    covered = frozenset().union(*fonts.values())
    missing = [char for char in dict.fromkeys(text) if not char.isspace() and ord(char) not in covered]
    if missing:
        logger.warning(
            "the explanation picture has no font for %s: they are drawn as empty boxes; install a font that has "
            "them (CJK: fonts-noto-cjk; emoji: fonts-noto-color-emoji) and run again",
            "".join(missing[:20]),
        )
    return list(fonts)


def selection_layers(selection: MistSelection) -> list[dict]:
    """A selection record's layers by frame, as `draw_explanation` reads them: per ISTA layer
    `{"segments": [k], "segment_scores": [S], "frames": [k * F/S], "patches": {frame: [j]},
    "patch_scores": {frame: [P]}, "segment_times": {segment: [start, end]}, "frame_times": {frame: t}}`
    (kept segments best first, their frames in time order; times in `selection.video["unit"]`)."""
    return [
        {
            "segments": [segment.segment for segment in layer.segments],
            "segment_scores": layer.segment_scores,
            "frames": [frame.frame for frame in layer.frames],
            "patches": {frame.frame: frame.patches for frame in layer.frames},
            "patch_scores": {frame.frame: frame.patch_scores for frame in layer.frames},
            "segment_times": {segment.segment: [segment.start, segment.end] for segment in layer.segments},
            "frame_times": {frame.frame: frame.time for frame in layer.frames},
        }
        for layer in selection.layers
    ]


def selection_of(outputs, index: int = 0, timing: dict | None = None) -> MistSelection:
    """The selection record of one example of a model output; `timing` is `video_timing` of its video, else
    times are sampled-frame positions."""
    if timing is None:
        num_segments = outputs.segment_scores[0].shape[-1]
        timing = frame_timing(outputs.frame_indices[0].shape[-1] * num_segments, num_segments)
    return MistSelection.from_outputs(outputs, index, timing)


def selections_of(outputs, index: int = 0, timing: dict | None = None) -> list[dict]:
    """Per ISTA layer, the kept segments, frames and patches of one example of a model output
    (`selection_layers` of `selection_of`)."""
    return selection_layers(selection_of(outputs, index, timing))


def selections_of_result(selection: list[dict]) -> list[dict]:
    """`selections_of`'s layers from the `"selection"` of a pipeline result (`return_selection=True`)."""
    return selection_layers(MistSelection.from_json({"selection": selection, "video": {}}))


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


@dataclass
class ExplanationLayout:
    """Where the picture's parts go, in inches from the figure's top-left corner (every axes is placed from these)."""

    num_frames: int
    aspect: float  # frame height / width
    per_line: int  # kept frames per line of a layer
    lines: int  # lines of kept frames per layer
    label_width: float = 1.25
    margin: float = 0.25
    timeline_height: float = 0.5
    legend_height: float = 0.75
    header: float = 0.55
    figure: object = None

    @classmethod
    def of(cls, frames: np.ndarray, layers: list[dict], answers) -> "ExplanationLayout":
        num_frames, height, width = frames.shape[:3]
        kept_per_layer = max(len(layer["frames"]) for layer in layers)
        per_line = min(kept_per_layer, KEPT_FRAMES_PER_LINE)
        layout = cls(num_frames, height / width, per_line, -(-kept_per_layer // per_line))
        layout.header = 0.55 + 0.3 * bool(answers)
        return layout

    @property
    def content_width(self) -> float:
        return max(self.per_line * KEPT_FRAME_INCHES, 7.0)

    @property
    def frame_width(self) -> float:
        return min(KEPT_FRAME_INCHES, self.content_width / self.per_line)

    @property
    def thumb_width(self) -> float:
        return self.content_width / self.num_frames

    @property
    def strip_height(self) -> float:
        return self.thumb_width * self.aspect + 0.35

    @property
    def kept_line_height(self) -> float:
        return self.frame_width * self.aspect + 0.3

    @property
    def layer_height(self) -> float:
        return self.timeline_height + 0.3 + self.lines * self.kept_line_height

    @property
    def width(self) -> float:
        return self.label_width + self.content_width + self.margin

    def height(self, num_layers: int) -> float:
        return self.header + self.strip_height + num_layers * self.layer_height + self.legend_height

    def axes(self, left: float, top: float, box_width: float, box_height: float):
        """Axes at `left`/`top` inches from the figure's top-left corner."""
        figure_width, figure_height = self.figure.get_size_inches()
        bottom = figure_height - top - box_height
        return self.figure.add_axes(
            (left / figure_width, bottom / figure_height, box_width / figure_width, box_height / figure_height)
        )

    def text(self, left: float, top: float, text: str, **options) -> None:
        """Figure text at `left` inches from the left and `top` inches from the top."""
        figure_width, figure_height = self.figure.get_size_inches()
        self.figure.text(left / figure_width, 1 - top / figure_height, text, **options)


def draw_explanation(
    frames: np.ndarray,
    layers: MistSelection | list[dict],
    num_segments: int,
    grid_size: int,
    path: str | Path,
    title: str = "",
    answers: list | None = None,
    timing: dict | None = None,
) -> Path:
    """Save the explanation PNG of one answer (see the module docstring) and return its path.

    `frames` `[F, H, W, 3]` uint8 are the sampled frames (the patch grid covers the whole frame);
    `layers` is a `MistSelection` (its `video` is the timing unless `timing` is given) or its
    `selection_layers`; `answers` are `(answer, score)` pairs or `{"answer", "score"}` dicts; `timing` is
    `video_timing` of the video (the pipeline's `result["video"]`) for times in seconds, else times are
    sampled-frame positions.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(layers, MistSelection):
        timing = timing or layers.video
        layers = selection_layers(layers)
    frames = np.asarray(frames)
    timing = timing or frame_timing(len(frames), num_segments)
    layout = ExplanationLayout.of(frames, layers, answers)
    layout.figure = plt.figure(figsize=(layout.width, layout.height(len(layers))), dpi=DPI)
    draw_header(layout, title, answers)
    patch_colours = draw_colour_bar(layout, layers)
    time_axis = segment_time_axis(timing, len(frames), num_segments)
    draw_film_strip(layout, frames, time_axis)
    top = layout.header + layout.strip_height
    for layer_number, layer in enumerate(layers):
        colour = LAYER_COLORS[layer_number % len(LAYER_COLORS)]
        draw_layer_label(layout, top, layer_number, colour)
        draw_segment_timeline(layout, top, layer, colour, time_axis)
        kept_top = top + layout.timeline_height + 0.3
        for position, frame in enumerate(layer["frames"]):
            line, column = divmod(position, layout.per_line)
            draw_kept_frame(
                layout, (kept_top + line * layout.kept_line_height, column), frames[frame], frame, layer, colour,
                grid_size, patch_colours, timing,
            )  # fmt: skip
        top += layout.layer_height
    draw_legend(layout, timing["unit"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout.figure.savefig(path, dpi=DPI)
    plt.close(layout.figure)
    return path


def draw_header(layout: ExplanationLayout, title: str, answers) -> None:
    """The question in bold and, below it, the ranked answers."""
    fonts = text_fonts(title + (_answer_text(answers) if answers else ""))  # a question in any script
    layout.text(0.5, 0.3, title, fontsize=12, weight="bold", va="center", fontfamily=fonts)
    if answers:
        layout.text(0.5, 0.65, "answers:  " + _answer_text(answers), fontsize=10, va="center", fontfamily=fonts)


def draw_colour_bar(layout: ExplanationLayout, layers: list[dict]) -> tuple:
    """The patch-score colour bar (top right); returns (its normalisation, its colour map)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    patch_maximum = max(
        (max(scores) for layer in layers for scores in layer.get("patch_scores", {}).values() if scores), default=1.0
    )
    norm = Normalize(0.0, max(patch_maximum, 1e-6))
    colour_map = colormaps[HEATMAP]
    bar = layout.axes(layout.width - layout.margin - 2.0, 0.32, 1.9, 0.12)
    colour_bar = layout.figure.colorbar(ScalarMappable(norm=norm, cmap=colour_map), cax=bar, orientation="horizontal")
    colour_bar.ax.tick_params(labelsize=6, length=2, pad=1)
    colour_bar.ax.set_title("patch selection score", fontsize=7, pad=2)
    return norm, colour_map


@dataclass
class SegmentTimeAxis:
    """The x axis shared by the film strip and the timelines: sampled-frame positions, ticks at segment bounds."""

    num_frames: int
    frames_per_segment: int
    ticks: list[int]
    labels: list[str]

    def apply(self, axes) -> None:
        axes.set_xlim(0, self.num_frames)
        axes.set_xticks(self.ticks, self.labels, fontsize=7)
        axes.set_yticks([])
        axes.tick_params(length=2, pad=1)


def segment_time_axis(timing: dict, num_frames: int, num_segments: int) -> SegmentTimeAxis:
    unit, bounds = timing["unit"], timing["segment_bounds"]
    frames_per_segment = num_frames // num_segments
    labels = [format_time(start, unit) for start, _ in bounds] + [format_time(bounds[-1][1], unit)]
    ticks = [segment * frames_per_segment for segment in range(num_segments + 1)]
    return SegmentTimeAxis(num_frames, frames_per_segment, ticks, labels)


def draw_film_strip(layout: ExplanationLayout, frames: np.ndarray, time_axis: SegmentTimeAxis) -> None:
    """The sampled frames side by side on the video's time axis, segment bounds as white lines."""
    strip_image_height = layout.thumb_width * layout.aspect
    strip = layout.axes(layout.label_width, layout.header, layout.content_width, strip_image_height)
    for frame in range(len(frames)):
        strip.imshow(frames[frame], extent=(frame, frame + 1, 1, 0), interpolation="nearest")
    for boundary in time_axis.ticks[1:-1]:
        strip.axvline(boundary, color="white", linewidth=2)
    strip.set_ylim(1, 0)
    strip.set_aspect("auto")
    time_axis.apply(strip)
    layout.text(0.25, layout.header + strip_image_height / 2, "video\n(sampled\nframes)", fontsize=8, va="center")


def draw_layer_label(layout: ExplanationLayout, top: float, layer_number: int, colour: str) -> None:
    """`ISTA layer N` in white on the layer's colour, left of its timeline."""
    from matplotlib.patches import Rectangle

    label = layout.axes(0.1, top, layout.label_width - 0.25, layout.timeline_height)
    label.add_patch(Rectangle((0, 0), 1, 1, color=colour))
    label.text(
        0.5, 0.5, f"ISTA layer {layer_number + 1}", color="white", ha="center", va="center", fontsize=9, weight="bold"
    )
    label.set_axis_off()


def draw_segment_timeline(
    layout: ExplanationLayout, top: float, layer: dict, colour: str, time_axis: SegmentTimeAxis
) -> None:
    """Segment scores over time: fill strength = score relative to the layer's best; kept segments outlined, ranked."""
    from matplotlib.patches import Rectangle

    scores = np.asarray(layer["segment_scores"], dtype=float)
    best = max(scores.max(), 1e-6)
    span = time_axis.frames_per_segment
    timeline = layout.axes(layout.label_width, top, layout.content_width, layout.timeline_height)
    for segment, score in enumerate(scores):
        left = segment * span
        kept = segment in layer["segments"]
        alpha = min(1.0, 0.08 + 0.92 * score / best)
        timeline.add_patch(Rectangle((left, 0), span, 1, facecolor=colour, alpha=alpha, linewidth=0))
        if kept:
            rank = layer["segments"].index(segment) + 1
            timeline.add_patch(
                Rectangle((left + 0.06, 0.04), span - 0.12, 0.92, fill=False, edgecolor=colour, linewidth=3)
            )
        text = f"{score:.2f}" + (f"\nkept #{rank}" if kept else "")
        timeline.text(left + span / 2, 0.5, text, ha="center", va="center", fontsize=7,
                      color="white" if score / best > 0.6 else "black")  # fmt: skip
    timeline.set_ylim(0, 1)
    time_axis.apply(timeline)
    for side in ("top", "right", "left"):
        timeline.spines[side].set_visible(False)


def draw_kept_frame(
    layout: ExplanationLayout,
    place: tuple[float, int],
    image: np.ndarray,
    frame: int,
    layer: dict,
    colour: str,
    grid_size: int,
    patch_colours: tuple,
    timing: dict,
) -> None:
    """One kept frame at `place` (top in inches, column): its patch scores as a heatmap, kept patches dashed, and a
    title with its segment's rank, its time and the whole-frame candidate's score."""
    from matplotlib.patches import Rectangle

    frame_top, column = place
    height, width = image.shape[:2]
    frame_width = layout.frame_width
    left = layout.label_width + column * frame_width + 0.04
    picture = layout.axes(left, frame_top, frame_width - 0.08, (frame_width - 0.08) * layout.aspect)
    picture.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
    num_patches = grid_size * grid_size
    patch_scores = layer.get("patch_scores", {}).get(frame)
    if patch_scores is not None:
        # the grid's P scores, row-major; a further candidate is the whole frame (frame_as_patch_candidate)
        norm, colour_map = patch_colours
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
        corner, size = (col * cell_width + 1, row * cell_height + 1), (cell_width - 2, cell_height - 2)
        # a dashed mark in the layer's colour on a white line: it stays visible over the heatmap's tint
        picture.add_patch(Rectangle(corner, *size, fill=False, edgecolor="white", linewidth=2.5))
        picture.add_patch(Rectangle(corner, *size, fill=False, edgecolor=colour, linewidth=1.5, linestyle=(0, (3, 2))))
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
    segment = frame // (layout.num_frames // len(layer["segment_scores"]))
    rank = layer["segments"].index(segment) + 1 if segment in layer["segments"] else "?"
    when = format_time(timing["frame_times"][frame], timing["unit"])
    picture.set_title(" · ".join([f"kept #{rank}: segment {segment}", when, *notes]), fontsize=7, pad=2)


def draw_legend(layout: ExplanationLayout, unit: str) -> None:
    """What each mark means, wrapped to the figure's width."""
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
    characters = int((layout.width - 0.7) * 17)  # about 17 characters per inch at 7.5 points
    legend_text = "\n".join(textwrap.fill(line, characters) for line in legend)
    _, figure_height = layout.figure.get_size_inches()
    layout.text(0.5, figure_height - layout.legend_height + 0.1, legend_text, fontsize=7.5, va="top")
