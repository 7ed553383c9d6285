"""The CLIP runtime's inference image tower and precision: the same embeddings as open_clip's tower, less work."""

import copy

import numpy as np
import open_clip
import pytest
import torch

import modeling_mist.clip_runtime_mist as runtime
from modeling_mist.clip_runtime_mist import (
    InferenceImageTower,
    build_clip_model,
    embed_images,
    images_per_forward,
    is_plain_vision_transformer,
)
from modeling_mist.video_processing_mist import MistVideoProcessor


def tiny_vision_tower(**overrides) -> torch.nn.Module:
    """A 2-layer open_clip ViT of width 32 with 224-pixel inputs and random weights."""
    config = {"image_size": 224, "patch_size": 32, "width": 32, "layers": 2, "heads": 2, "mlp_ratio": 4.0}
    config.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tower = open_clip.transformer.VisionTransformer(output_dim=16, **config)
        for parameter in tower.parameters():  # open_clip starts some at zero or one: make every one count
            parameter.data.normal_(0, 0.2)
    return tower.eval().requires_grad_(False)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(0, -2), b.flatten(0, -2), dim=-1).min().item()


@pytest.mark.parametrize("activation", [open_clip.transformer.QuickGELU, torch.nn.GELU])
def test_inference_tower_embeds_what_open_clips_tower_does(activation):
    tower = tiny_vision_tower(act_layer=activation)
    images = torch.randn(5, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert is_plain_vision_transformer(tower)
    inference = InferenceImageTower(copy.deepcopy(tower))
    with torch.inference_mode():
        expected, actual = tower(images), inference(images)
    assert actual.shape == (5, 16) and expected.abs().mean() > 0.1
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    assert inference.image_size == tower.image_size and inference.output_dim == tower.output_dim


def test_towers_of_another_layout_are_left_to_open_clip(clip_model_name):
    assert not is_plain_vision_transformer(tiny_vision_tower(ls_init_value=0.1))  # layer scale
    assert not is_plain_vision_transformer(tiny_vision_tower(pool_type="avg"))
    assert isinstance(build_clip_model(clip_model_name, None).visual, InferenceImageTower)


def test_cpu_forwards_are_capped_to_stay_in_cache_and_do_not_change_the_embeddings():
    model = torch.nn.Module()
    model.visual = InferenceImageTower(tiny_vision_tower())  # 7 x 7 patches + the class token = 50 tokens
    model.encode_image = model.visual
    assert images_per_forward(model, torch.device("cpu"), 544) == runtime.CPU_TOKENS_PER_FORWARD // 50
    assert images_per_forward(model, torch.device("cpu"), 8) == 8
    assert images_per_forward(model, torch.device("cuda"), 544) == 544
    images = torch.randn(70, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model.visual(images)
    torch.testing.assert_close(embed_images(model, images, 544, autocast=False), expected, rtol=1e-4, atol=1e-5)


def test_auto_precision_is_bfloat16_on_a_cpu_with_native_bf16_and_float32_without(clip_model_name, monkeypatch):
    processor = MistVideoProcessor(clip_model_name=clip_model_name, clip_pretrained=None)
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: True)
    assert processor.clip_weights_dtype("cpu") == "bfloat16"
    assert next(processor.clip_model().parameters()).dtype == torch.bfloat16
    assert processor.clip_weights_dtype("cuda") is None  # float32 weights under fp16 autocast
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: False)
    assert processor.clip_weights_dtype("cpu") is None
    assert next(processor.clip_model().parameters()).dtype == torch.float32
    assert MistVideoProcessor(clip_pretrained=None, clip_dtype="float32").clip_weights_dtype("cpu") == "float32"


@pytest.mark.skipif(not runtime.cpu_has_native_bfloat16(), reason="this CPU has no native bfloat16 (AVX512-BF16/AMX)")
def test_default_cpu_features_of_vit_b32_are_within_cosine_1e4_of_the_float32_reference_pixels_path():
    """The acceptance bound, at ViT-B/32's real size (random weights: nothing is downloaded): the default path
    (bf16 weights, inference tower) against float32 open_clip on the same reference pixels."""
    frames = np.random.default_rng(0).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    frames[:, 40:60, 30:90] = (250, 20, 20)  # a sharp-edged block, so that the crops differ
    default = MistVideoProcessor(clip_model_name="ViT-B-32-quickgelu", clip_pretrained=None, num_frames=2)
    features = default(frames)
    reference = MistVideoProcessor(
        clip_model_name="ViT-B-32-quickgelu", clip_pretrained=None, num_frames=2, clip_dtype="float32"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        plain = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()  # open_clip's own tower, the processors' weights
    frame_images, crops = reference.clip_pixel_values(torch.from_numpy(frames).permute(0, 3, 1, 2))
    with torch.inference_mode():
        expected_frames = plain.encode_image(frame_images)  # [F, D]
        expected_patches = plain.encode_image(crops.flatten(0, 1)).view(2, 16, -1)  # [F, P, D]
    assert next(default.clip_model().parameters()).dtype == torch.bfloat16
    assert cosine(features["frame_features"][0], expected_frames) > 0.9999
    assert cosine(features["patch_features"][0], expected_patches) > 0.9999
    torch.testing.assert_close(reference(frames)["patch_features"][0], expected_patches, rtol=1e-4, atol=1e-4)
