"""`mist app`: a web page to ask MIST questions about a video.

    mist app [--model DIR] [--host 127.0.0.1] [--port 7860] [--device cpu|cuda]

Upload a video (or pick a sample), type a question (and its choices, one per line), and see the
ranked answers, each ISTA layer's segment scores on a timeline and the kept frames with their patch
scores. The Ask button is also the API endpoint `/answer` (video, question, choices) for
`gradio_client`. Without --model it serves the demo's model (`mist demo`'s OUTPUT/model, trained
first, MIST only, if it is missing) with synthetic sample videos. Nothing leaves the machine:
Gradio's analytics are off and no share link is made.
"""

from pathlib import Path

from huggingface_hub.errors import StrictDataclassError

from training.cli.arguments import MistArgumentParser
from training.errors import Failure, ReportedErrors, UsageError, named_by

DEFAULT_DEMO_DIR = "outputs/demo"


def demo_model(demo_dir: Path) -> Path:
    """The demo's saved model, trained first (MIST only, offline) when it is not there."""
    model_dir = demo_dir / "model"
    if not (model_dir / "config.json").exists():
        from training.demo import DemoOptions, run_demo

        print(f"mist app: no demo model in {model_dir}; training it first (a few minutes on CPU)", flush=True)
        run_demo(DemoOptions(output_dir=str(demo_dir), skip_baseline=True), report=lambda line: print(line, flush=True))
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = MistArgumentParser(prog="mist app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="folder (or Hub id) of a trained MIST; default: the demo's model")
    parser.add_argument(
        "--demo-dir", default=DEFAULT_DEMO_DIR, help="where the demo's model is (or is built) without --model"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--samples", type=int, default=3, help="demo sample videos offered on the page")
    args = parser.parse_args(argv)
    with ReportedErrors("mist app", args.debug) as outcome:
        return serve(args)
    return outcome.status


def serve(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError as error:
        raise Failure("needs gradio: pip install 'mist-videoqa[app]'") from error
    import torch
    from transformers import pipeline

    import modeling_mist  # noqa: F401  (registers the pipeline)
    from training.app import VideoQuestionAnswerer, launch_app
    from training.app_samples import demo_samples
    from training.factory import check_device, check_saved_model

    with named_by("--device"):
        device = check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model_dir = Path(args.model) if args.model else demo_model(Path(args.demo_dir))
    try:
        if model_dir.expanduser().is_dir():
            with named_by("--model"):
                check_saved_model(model_dir.expanduser())  # names what is missing
        answerer = pipeline("video-question-answering", model=str(model_dir), device=device)
    except (OSError, ValueError, Failure, StrictDataclassError) as error:
        reason = str(error.__cause__ if isinstance(error, StrictDataclassError) else error).strip().splitlines()[0]
        raise UsageError(f"cannot load {str(model_dir)!r}: {reason}") from error
    # the demo's synthetic test videos, when the model is the demo's (its data sits beside it)
    is_demo = (model_dir.parent / "demo_results.json").exists()
    samples = demo_samples(model_dir.parent, answerer.model.config, args.samples) if is_demo else []
    launch_app(VideoQuestionAnswerer(answerer, samples), host=args.host, port=args.port)
    return 0
