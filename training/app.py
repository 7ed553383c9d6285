"""The MIST web app behind `mist app`: ask questions about a video in the browser.

`VideoQuestionAnswerer.answer(video, question, choices)` is the one function the page and its API
endpoint `/answer` call: it runs the `video-question-answering` pipeline and draws what MIST looked
at (`training.explain`). `build_app` lays out the Gradio page around it; `launch_app` serves it on
this machine only (Gradio's analytics off, no share link).
"""

import hashlib
import itertools
import os
import tempfile
from pathlib import Path

from modeling_mist.selection_mist import MistSelection

from .app_samples import Sample
from .demo.synthetic_dataset import OBJECT_WORDS
from .explain import draw_explanation

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # nothing leaves this machine (read when gradio is imported)

API_NAME = "answer"
TOP_K = 5
FEATURE_CACHE_SIZE = 4  # videos whose CLIP features are kept between questions


def parse_choices(text: str | None) -> list[str] | None:
    """Choices typed one per line; None (open-ended) when there are none."""
    choices = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return choices or None


def _digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def format_selection(selection: MistSelection) -> str:
    """Markdown: per ISTA layer, the kept segments with their times and scores, best first."""
    unit = selection.video["unit"]
    suffix = "s" if unit == "seconds" else ""
    lines = []
    for layer in selection.layers:
        kept = ", ".join(
            f"segment {segment.segment} ({segment.start:g}{suffix}-{segment.end:g}{suffix}, score {segment.score:.2f})"
            for segment in layer.segments
        )
        lines.append(f"* **ISTA layer {layer.layer}** kept {kept}")
    if unit != "seconds":
        lines.append("\n(times are frame numbers: the video's frame rate is unknown)")
    return "\n".join(lines)


class VideoQuestionAnswerer:
    """The pipeline and the explanation picture behind the page.

    `samples` are offered on the page; a sample carrying stored features (the demo's synthetic videos)
    is answered from them, recognised by the uploaded file's content.
    """

    def __init__(self, answerer, samples: list[Sample] = (), output_dir: str | os.PathLike | None = None):
        self.pipeline = answerer
        self.config = answerer.model.config
        self.samples = list(samples)
        self._sample_of = {
            _digest(sample.video): sample for sample in self.samples if sample.frame_features is not None
        }
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="mist-app-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._pictures = itertools.count()
        self._features = {}  # CLIP features of the last videos asked about, by content digest

    def describe_model(self) -> str:
        name = self.config.name_or_path or "MIST"
        if self.config.multiple_choice:
            task = "multiple choice: give the choices, one per line"
        else:
            task = f"open-ended over {len(self.config.answer_vocabulary or [])} answers, choices optional"
        text = (
            f"Model `{name}` ({task}); {self.config.num_frames} frames in {self.config.num_segments} segments, "
            f"{self.config.grid_size}x{self.config.grid_size} patches per frame."
        )
        if self._sample_of:
            text += (
                " It is the synthetic demo's model: it reads the demo task's features, not CLIP's, so it answers "
                "the sample videos (their features are stored)."
            )
            generator = next(iter(self._sample_of.values())).generator
            if generator is not None:  # which coloured square in the sample videos is which object
                swatches = [
                    f'<span style="color:#{red:02x}{green:02x}{blue:02x}">&#9632;</span> {word}'
                    for word, (red, green, blue) in zip(OBJECT_WORDS, generator.palette().tolist())
                ]
                text += "\n\nObjects in the sample videos: " + ", ".join(swatches) + "."
        return text

    def example(self, video: str, question: str, choices: list[str] | None) -> dict:
        """The pipeline's input for one question, with the video's features: a known synthetic sample's stored
        ones, or CLIP's, computed once per video content (people ask several questions about one video)."""
        example = {"video": video, "question": question, "choices": choices}
        digest = _digest(video)
        sample = self._sample_of.get(digest)
        if sample is not None:
            example.update(
                frame_features=sample.frame_features,
                patch_features=sample.patch_features,
                question_clip_embedding=sample.embed_question(question),
            )
            return example
        if digest not in self._features:
            video_processor = self.pipeline.processor.video_processor
            self._check_clip_fits(video_processor)
            frames = video_processor.load_video(video, num_frames=self.config.num_frames)
            frame_features, patch_features = video_processor.extract_features([frames])
            while len(self._features) >= FEATURE_CACHE_SIZE:
                self._features.pop(next(iter(self._features)))  # the oldest video
            self._features[digest] = {"frame_features": frame_features[0], "patch_features": patch_features[0]}
        example.update(self._features[digest])
        return example

    def _check_clip_fits(self, video_processor) -> None:
        """Refuse, before the CLIP pass, a model that does not read CLIP's features (the synthetic demo's)."""
        try:
            video_processor.check_clip_width(self.config.clip_hidden_size)
        except ValueError as error:
            hint = ": pick one of the sample videos" if self._sample_of else ""
            raise ValueError(f"{error}{hint}") from error

    def answer(self, video: str | None, question: str | None, choices: str | None = None):
        """(ranked answers `[{"answer", "score"}]`, `{answer: score}` for the label, explanation PNG path,
        kept segments as Markdown). Raises `ValueError` naming what is missing or wrong."""
        if not video:
            raise ValueError("no video: upload one or pick a sample")
        if not question or not question.strip():
            raise ValueError("no question: type one")
        question = question.strip()
        result = self.pipeline(
            self.example(video, question, parse_choices(choices)),
            top_k=TOP_K,
            return_selection=True,
            return_frames=True,
        )
        answers, selection = result["answers"], MistSelection.from_json(result)
        picture = draw_explanation(
            result["frames"],
            selection,
            self.config.num_segments,
            self.config.grid_size,
            self.output_dir / f"explanation-{next(self._pictures)}.png",
            title=question,
            answers=answers,
        )
        label = {item["answer"]: item["score"] for item in answers}
        return answers, label, str(picture), format_selection(selection)


def build_app(answerer: VideoQuestionAnswerer):
    """The Gradio page: video, question and choices in; answers, explanation picture and kept segments out.

    The Ask button is the API endpoint `/answer` (video, question, choices) whose first output is the
    ranked answers as a list of `{"answer", "score"}`.
    """
    import gradio as gr

    def answer(video, question, choices):
        try:
            return answerer.answer(video, question, choices)
        except ValueError as error:  # a user's mistake (no video, bad choices, an unreadable file): no traceback
            raise gr.Error(str(error), print_exception=False) from error

    with gr.Blocks(title="MIST video question answering") as app:
        gr.Markdown(
            "## MIST: long-form video question answering\n"
            "Upload a video (or pick a sample), ask a question, and see the ranked answers and what MIST "
            "looked at: per ISTA layer, the segments it scored over time and the patches of the frames it kept.\n\n"
            + answerer.describe_model()
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="video", sources=["upload"], height=320, elem_id="video")
                question = gr.Textbox(label="question", placeholder="what did the person hold?", elem_id="question")
                choices = gr.Textbox(
                    label="choices, one per line", placeholder="empty: open-ended", lines=3, elem_id="choices"
                )
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
                if answerer.samples:
                    gr.Examples(
                        [
                            [sample.video, sample.question, "\n".join(sample.choices or [])]
                            for sample in answerer.samples
                        ],
                        inputs=[video, question, choices],
                        label="samples (synthetic demo videos, answered from their stored features)"
                        if answerer._sample_of
                        else "samples",
                    )
            with gr.Column(scale=1):
                label = gr.Label(label="answers", num_top_classes=TOP_K, elem_id="answers")
                kept = gr.Markdown(elem_id="kept-segments")
                with gr.Accordion("answers as JSON (what the /answer API returns first)", open=False):
                    ranked = gr.JSON(show_label=False, elem_id="answers-json")
        gr.Markdown("### What MIST looked at")
        picture = gr.Image(show_label=False, type="filepath", elem_id="explanation")
        outputs = [ranked, label, picture, kept]
        ask.click(answer, [video, question, choices], outputs, api_name=API_NAME)
        question.submit(answer, [video, question, choices], outputs, api_visibility="private")
    return app


def launch_app(answerer: VideoQuestionAnswerer, host: str = "127.0.0.1", port: int | None = None, block: bool = True):
    """Serve the page on `host:port` (None: the first free port from 7860); returns the Gradio app."""
    app = build_app(answerer)
    allowed = [str(answerer.output_dir)] + sorted({str(Path(sample.video).parent) for sample in answerer.samples})
    app.queue().launch(
        server_name=host,
        server_port=port,
        share=False,
        prevent_thread_lock=True,
        show_error=True,
        allowed_paths=allowed,
        quiet=True,  # Gradio's own lines suggest share=True, which this page never uses: nothing leaves the machine
    )
    if block:
        print(f"mist app: serving on {app.local_url} (Ctrl-C to stop)", flush=True)
        app.block_thread()
    return app
