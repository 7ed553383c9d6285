"""CLIP features of the video processor: shapes, crop layout checked by hand, batching, text tower."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_mist.clip_runtime_mist import parse_clip_pretrained
from modeling_mist.video_processing_mist import MistVideoProcessor
from tests.helpers import CLIP_EMBED_DIM
from tests.processing.video_testing import GRID_SIZE, NUM_FRAMES

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


def clip_input(image: Image.Image) -> torch.Tensor:
    """A 224x224 PIL image as a normalised CLIP input `[3, 224, 224]`."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    return (pixels - CLIP_MEAN) / CLIP_STD


def embed_one(model, image: Image.Image) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_image(clip_input(image)[None])[0]


def test_video_features_shapes_and_dtypes(video_processor, video_dir):
    videos = [os.path.join(video_dir, name) for name in ("alpha.mp4", "bravo.webm", "delta.mkv")]
    features = video_processor(videos)
    assert set(features) == {"frame_features", "patch_features"}
    assert features["frame_features"].shape == (3, NUM_FRAMES, CLIP_EMBED_DIM)
    assert features["patch_features"].shape == (3, NUM_FRAMES, GRID_SIZE**2, CLIP_EMBED_DIM)
    assert features["frame_features"].dtype == features["patch_features"].dtype == torch.float32


def test_patches_are_the_grid_crops_row_major_and_frames_use_clip_preprocessing(video_processor):
    """Patch i of frame t is the CLIP embedding of crop (row i // G, column i % G) of the resized frame."""
    # Noise with a different brightness per region, so that every crop differs from the others.
    generator = np.random.default_rng(0)
    frames = generator.integers(0, 156, (NUM_FRAMES, 60, 80, 3), dtype=np.uint8)
    frames[:, :30, 40:] += 50
    frames[:, 30:, :40] += 100
    features = video_processor(frames)  # NUM_FRAMES frames: sampling keeps them all
    model = video_processor.clip_model()
    canvas_side = GRID_SIZE * 224
    for time in (0, 5):
        frame = Image.fromarray(frames[time])
        # By hand, with PIL: the whole frame squashed to the canvas, crops read left to right, top to bottom.
        canvas = frame.resize((canvas_side, canvas_side), Image.BICUBIC)
        crops = [
            canvas.crop((column * 224, row * 224, (column + 1) * 224, (row + 1) * 224))
            for row in range(GRID_SIZE)
            for column in range(GRID_SIZE)
        ]
        expected = torch.stack([embed_one(model, crop) for crop in crops])  # [P, D]
        actual = features["patch_features"][0, time]
        torch.testing.assert_close(actual, expected, atol=2e-3, rtol=1e-3)
        # The layout is right, not merely close: each patch is nearest to its own crop.
        distances = torch.cdist(actual, expected)
        assert distances.argmin(dim=1).tolist() == list(range(GRID_SIZE**2))

        # Frame: short side to 224 (bicubic, long side truncated as torchvision does), centre crop 224.
        scaled = frame.resize((int(frame.width * 224 / frame.height), 224), Image.BICUBIC)
        left = int(round((scaled.width - 224) / 2))
        expected_frame = embed_one(model, scaled.crop((left, 0, left + 224, 224)))
        torch.testing.assert_close(features["frame_features"][0, time], expected_frame, atol=2e-3, rtol=1e-3)


def test_features_do_not_depend_on_batching(video_processor, video_dir):
    paths = [os.path.join(video_dir, name) for name in ("alpha.mp4", "charlie.avi")]
    together = video_processor(paths, clip_batch_size=1000)
    small_forwards = video_processor(paths, clip_batch_size=7)
    alone = video_processor(paths[1])
    for name in ("frame_features", "patch_features"):
        torch.testing.assert_close(small_forwards[name], together[name], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alone[name][0], together[name][1], atol=1e-5, rtol=1e-5)


def test_frame_arrays_match_the_decoded_video(video_processor, video_dir):
    path = os.path.join(video_dir, "bravo.webm")
    from_file = video_processor(path)
    frames = video_processor.load_video(path)
    from_array = video_processor(torch.from_numpy(frames))  # already NUM_FRAMES frames: sampling keeps them all
    torch.testing.assert_close(from_array["patch_features"], from_file["patch_features"])


def test_text_embedding_is_the_raw_clip_text_feature(video_processor):
    import open_clip

    questions = ["what is the person holding?", "where did the ball go"]
    embeddings = video_processor.encode_text(questions)
    model = video_processor.clip_model()
    tokens = open_clip.get_tokenizer(video_processor.clip_model_name)(questions)
    with torch.no_grad():
        expected = model.encode_text(tokens)
    assert embeddings.shape == (2, CLIP_EMBED_DIM) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings, expected)
    assert not torch.allclose(embeddings.norm(dim=-1), torch.ones(2))  # not normalised


def test_random_clip_weights_are_the_same_in_every_process(clip_model_name):
    first = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None).clip_model()
    second = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained="none").clip_model()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None).clip_model()
    assert torch.equal(torch.rand(1), before)  # building CLIP leaves the caller's random state alone


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("none", None), ("None", None), ("NONE", None), ("openai", "openai")],
)
def test_clip_pretrained_none_means_random_weights(value, expected):
    assert parse_clip_pretrained(value) == expected
    assert MistVideoProcessor(clip_pretrained=value).clip_pretrained == expected


def test_clip_pretrained_file_is_kept_as_a_path_string(tmp_path):
    checkpoint = tmp_path / "none" / "weights.pt"  # a folder named none is not the "none" keyword
    assert parse_clip_pretrained(checkpoint) == str(checkpoint)


def test_crop_size_must_match_the_clip_image_size(clip_model_name):
    processor = MistVideoProcessor(
        clip_model_name=clip_model_name, clip_pretrained=None, crop_size={"height": 112, "width": 112}
    )
    with pytest.raises(ValueError, match="crop_size"):
        processor.clip_model()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(0, -2), b.flatten(0, -2), dim=-1).min().item()


@pytest.mark.parametrize("clip_dtype", ["bfloat16", "float16"])
def test_clip_dtype_runs_clip_in_that_type_and_keeps_float32_outputs(clip_model_name, video_dir, clip_dtype):
    def make(dtype):
        return MistVideoProcessor(
            clip_model_name=clip_model_name, clip_pretrained=None, num_frames=NUM_FRAMES, clip_dtype=dtype
        )

    path = os.path.join(video_dir, "alpha.mp4")
    reference, half = make("float32"), make(clip_dtype)
    expected, features = reference(path), half(path)
    assert next(half.clip_model().parameters()).dtype == getattr(torch, clip_dtype)
    for name in ("frame_features", "patch_features"):
        assert features[name].dtype == torch.float32 and features[name].shape == expected[name].shape
        assert 0.999 < cosine(features[name], expected[name]) <= 1 + 1e-6, name
        assert not torch.equal(features[name], expected[name])  # computed in the half type, not in float32
    questions = ["what did the person hold?", "why"]
    text = half.encode_text(questions)
    assert text.dtype == torch.float32 and 0.999 < cosine(text, reference.encode_text(questions)) <= 1 + 1e-6


def test_changing_clip_dtype_rebuilds_clip_rather_than_casting_the_half_weights_back(clip_model_name, video_dir):
    path = os.path.join(video_dir, "charlie.avi")
    processor = MistVideoProcessor(
        clip_model_name=clip_model_name, clip_pretrained=None, num_frames=NUM_FRAMES, clip_dtype="bfloat16"
    )
    processor(path)
    processor.clip_dtype = "auto"
    fresh = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None, num_frames=NUM_FRAMES)
    torch.testing.assert_close(processor(path)["patch_features"], fresh(path)["patch_features"], rtol=0, atol=0)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("auto", None), (torch.bfloat16, "bfloat16")])
def test_clip_dtype_values(value, expected, tmp_path):
    processor = MistVideoProcessor(clip_pretrained=None, clip_dtype=value)
    assert processor.clip_dtype == expected
    processor.save_pretrained(tmp_path)
    assert MistVideoProcessor.from_pretrained(tmp_path).clip_dtype == expected
    with pytest.raises(ValueError, match=r"clip_dtype 'half': expected 'auto' or one of 'float32', 'float16'"):
        MistVideoProcessor(clip_dtype="half")


@pytest.mark.parametrize(
    ("clip_dtype", "autocast"), [(None, True), ("auto", True), ("float32", False), ("float16", False)]
)
@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # building a CUDA autocast on a CPU machine
def test_only_the_auto_precision_runs_clip_under_autocast(clip_model_name, monkeypatch, clip_dtype, autocast):
    """An explicit `clip_dtype`, float32 included, means that type with no fp16 autocast on a GPU."""
    import modeling_mist.clip_runtime_mist as runtime
    import modeling_mist.video_processing_mist as module
    from modeling_mist.clip_runtime_mist import clip_autocast

    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: False)  # auto: float32 weights, as on a GPU

    assert isinstance(clip_autocast(torch.device("cuda"), enabled=True), torch.autocast)
    assert not isinstance(clip_autocast(torch.device("cuda"), enabled=False), torch.autocast)
    assert not isinstance(clip_autocast(torch.device("cpu"), enabled=True), torch.autocast)
    calls = []
    monkeypatch.setattr(module, "embed_images", lambda *args, autocast: calls.append(("images", autocast)))
    monkeypatch.setattr(module, "embed_texts", lambda *args, autocast: calls.append(("texts", autocast)))
    processor = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None, clip_dtype=clip_dtype)
    processor.encode_images(torch.zeros(1, 3, 32, 32))
    processor.encode_text(["why"])
    assert calls == [("images", autocast), ("texts", autocast)]


def sharp_edged_frames(num_frames: int = 3, height: int = 60, width: int = 80) -> torch.Tensor:
    """Frames `[F, 3, H, W]` uint8 of one-pixel stripes, saturated blocks and noise: where bicubic overshoots most."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (num_frames, 3, height, width), generator=generator, dtype=torch.uint8)
    frames[:, :, : height // 2, : width // 2] = 0
    frames[:, :, : height // 2, 1 : width // 2 : 2] = 255  # vertical stripes
    frames[:, 0, height // 2 :, width // 2 :] = 255  # a saturated red block on black
    frames[:, 1:, height // 2 :, width // 2 :] = 0
    return frames


def test_pixels_are_the_references_float_path_resize(video_processor):
    """The reference's `VideoCLIPDataset` transforms (torchvision v1 on uint8 tensors: interpolate in float, round
    once), pixel for pixel, on frames with sharp edges; torchvision v2's uint8 kernel would differ there."""
    from torchvision import transforms as v1
    from torchvision.transforms import InterpolationMode
    import torchvision.transforms.v2.functional as v2

    frames = sharp_edged_frames()
    side, canvas_side = 224, GRID_SIZE * 224
    normalise = v1.Compose([v1.ConvertImageDtype(torch.float), v1.Normalize(CLIP_MEAN.flatten(), CLIP_STD.flatten())])
    reference_frames = v1.Compose(
        [v1.Resize(side, interpolation=InterpolationMode.BICUBIC, antialias=True), v1.CenterCrop(side), normalise]
    )(frames)
    reference_canvas = v1.Compose(
        [v1.Resize((canvas_side, canvas_side), interpolation=InterpolationMode.BICUBIC, antialias=True), normalise]
    )(frames)
    # the reference cuts its patches with unfold, row-major: [F, 3, G, G, S, S] -> [F, P, 3, S, S]
    reference_crops = reference_canvas.unfold(2, side, side).unfold(3, side, side)
    reference_crops = reference_crops.reshape(len(frames), 3, GRID_SIZE**2, side, side).transpose(1, 2)

    frame_images, crops = video_processor.clip_pixel_values(frames)
    torch.testing.assert_close(frame_images, reference_frames, rtol=0, atol=0)
    torch.testing.assert_close(crops, reference_crops, rtol=0, atol=0)

    # The test can tell: torchvision v2's two-pass uint8 kernel moves pixels at these edges by several levels.
    uint8_canvas = v2.resize(frames, [canvas_side, canvas_side], interpolation=InterpolationMode.BICUBIC)
    float_canvas = v1.Resize((canvas_side, canvas_side), interpolation=InterpolationMode.BICUBIC)(frames)
    assert (uint8_canvas.int() - float_canvas.int()).abs().max() >= 5


def test_shortest_edge_size_truncates_the_long_side_like_torchvision():
    from modeling_mist.video_processing_mist import shortest_edge_size

    assert shortest_edge_size((480, 640), 224) == (224, 298)  # 298.67 truncated
    assert shortest_edge_size((640, 480), 224) == (298, 224)
    assert shortest_edge_size((224, 224), 224) == (224, 224)
