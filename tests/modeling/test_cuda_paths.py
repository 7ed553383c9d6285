"""The GPU paths on a real CUDA device (skipped without one): no host-device synchronisation in MIST's own
forward, loss and backward as CUDA itself reports them, bf16 autocast and inductor-compiled models giving
float32's predictions, and CLIP feature extraction on the GPU (fp16) matching the CPU's float32 features.

CI has no GPU, so these skip there; they run wherever `torch.cuda.is_available()` (see README, Speed)."""

import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_mist import MistForVideoQuestionAnswering
from tests.modeling.mist_testing import random_inputs, tiny_config
from tests.modeling.test_speed_paths import NEXTQA_LIKE

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

PACKAGE = str(Path(__file__).resolve().parents[2] / "modeling_mist")


def on_cuda(inputs: dict) -> dict:
    return {name: value.to("cuda") for name, value in inputs.items()}


class Synchronisations:
    """Where CUDA synchronises the host (torch's sync debug mode, "warn"): the innermost frame outside
    torch of each synchronising call, split into MIST's own code and the rest (transformers' text encoders)."""

    def __init__(self):
        self.mist, self.others = [], []

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._record
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode("default")
        self._warnings.__exit__(*exc)

    def _record(self, message, category, filename, lineno, file=None, line=None):
        if "synchronizing" not in str(message):
            return
        skip = ("/torch/", warnings.__file__)  # torch's own frames and the warnings machinery
        frames = [f for f in traceback.extract_stack()[:-1] if not any(part in f.filename for part in skip)]
        place = frames[-1] if frames else None
        text = f"{Path(place.filename).name}:{place.lineno} {place.name}" if place else str(message)
        (self.mist if place and place.filename.startswith(PACKAGE) else self.others).append(text)


def test_sync_debug_mode_sees_a_synchronisation():
    """The detector itself: a `.item()` here is seen, and placed in this function (not in MIST's code)."""
    with Synchronisations() as syncs:
        torch.ones(2, device="cuda").sum().item()
    assert syncs.others and syncs.mist == []
    assert any(place.endswith(" test_sync_debug_mode_sees_a_synchronisation") for place in syncs.others), syncs.others


@pytest.mark.parametrize("variant", ["agqa", "nextqa_like"])
def test_no_synchronisation_in_mist_forward_loss_backward(variant):
    config = tiny_config(**(NEXTQA_LIKE if variant == "nextqa_like" else {}))
    model = MistForVideoQuestionAnswering(config).to("cuda").train()
    inputs = on_cuda(random_inputs(config))
    inputs["labels"] = torch.tensor([0, 2, -100], device="cuda")
    model(**inputs).loss.backward()  # warm-up: lazy initialisation may synchronise once
    with Synchronisations() as syncs:
        model(**inputs).loss.backward()
    assert syncs.mist == [], f"MIST synchronises the host at {syncs.mist} (others: {syncs.others})"


def test_bf16_autocast_on_cuda_gives_float32_predictions():
    config = tiny_config(dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).to("cuda").eval()
    inputs = on_cuda(random_inputs(config, batch_size=16, seed=1))
    with torch.no_grad():
        reference = model(**inputs).logits
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(**inputs).logits.float()
    assert (low - reference).abs().max() <= 0.05 * (reference.max() - reference.min())
    assert (low.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


def test_inductor_compiled_model_on_cuda_matches_eager_and_trains():
    torch._dynamo.reset()
    config = tiny_config(dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).to("cuda").eval()
    inputs = on_cuda(random_inputs(config, batch_size=8, seed=2))
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(**inputs).logits
        logits = compiled(**inputs).logits
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    model.train()
    inputs["labels"] = torch.arange(8, device="cuda") % config.num_labels
    compiled(**inputs).loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    torch._dynamo.reset()


def test_clip_features_on_cuda_match_cpu():
    pytest.importorskip("open_clip")
    from modeling_mist.video_processing_mist import MistVideoProcessor

    processor = MistVideoProcessor(
        clip_model_name="ViT-B-32-quickgelu", clip_pretrained=None, num_frames=4, grid_size=2
    )
    generator = np.random.default_rng(0)
    video = generator.integers(0, 256, (4, 96, 128, 3), dtype=np.uint8)
    cpu_frames, cpu_patches = processor.extract_features([video], device="cpu")
    gpu_frames, gpu_patches = processor.extract_features([video], device="cuda")
    assert gpu_frames.shape == cpu_frames.shape == (1, 4, 512) and gpu_patches.shape == (1, 4, 4, 512)
    assert gpu_frames.device.type == "cpu" and gpu_frames.dtype == torch.float32
    # fp16 autocast on the GPU: each feature's direction within 1e-3 of float32's
    for gpu, cpu in ((gpu_frames, cpu_frames), (gpu_patches, cpu_patches)):
        cosine = torch.nn.functional.cosine_similarity(gpu.flatten(0, -2), cpu.flatten(0, -2), dim=-1)
        assert cosine.min() > 0.999
