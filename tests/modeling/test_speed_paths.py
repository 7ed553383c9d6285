"""GPU-ready paths, checked on the CPU: no host-device synchronisation in MIST's own forward and loss, a
forward that torch.compile traces as one graph, and bf16 autocast giving float32's predictions."""

import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from modeling_mist import MistForVideoQuestionAnswering
from tests.modeling.mist_testing import random_inputs, tiny_config

NEXTQA_LIKE = dict(
    num_segments=8, num_selected_segments=1, num_temporal_layers=1, frame_as_patch_candidate=True, hidden_size=16,
    question_tokens_in_sequence=False, segment_normalization="time", fusion_pooling="mean",
    answer_pooling="mean_unmasked", num_ista_layers=1,
)  # fmt: skip
MODEL_FILE = str(Path(__file__).resolve().parents[2] / "modeling_mist" / "modeling_mist.py")


class ScalarReads(TorchDispatchMode):
    """Records where MIST's own code reads a tensor's value on the host (`.item()`, `bool(tensor)`,
    `.tolist()`): on an accelerator each is a device synchronisation. Reads inside the text encoders
    (transformers' BERT checks whether its padding mask is all ones, and skips that under torch.compile)
    are transformers' and not counted; the check of host labels is free and is not counted either."""

    def __init__(self):
        super().__init__()
        self.places = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            stack = [frame for frame in traceback.extract_stack() if "/torch/" not in frame.filename]
            innermost = stack[-2]  # the frame below this method
            if innermost.filename == MODEL_FILE and innermost.name != "_check_labels":
                self.places.append(f"{innermost.name}:{innermost.lineno}")
        return func(*args, **(kwargs or {}))


class HostToDeviceCopies(TorchDispatchMode):
    """Records copies of host tensors to another device (on a GPU each copy from pageable memory synchronises
    the host; CUDA's sync debug mode found one in `tests/modeling/test_cuda_paths.py`). The model and inputs
    live on the meta device, which stands in for an accelerator on a machine without one; host reads of meta
    tensors (transformers' padding-mask check) are answered True, since `ScalarReads` covers MIST's own."""

    def __init__(self):
        super().__init__()
        self.places = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            return True
        output = func(*args, **(kwargs or {}))
        sources = [arg for arg in args if isinstance(arg, torch.Tensor)]
        if (
            func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default)
            and isinstance(output, torch.Tensor)
            and sources[-1].device.type == "cpu"
            and output.device.type != "cpu"
        ):
            frames = [frame for frame in traceback.extract_stack() if "/torch/" not in frame.filename]
            innermost = frames[-2]
            self.places.append(f"{Path(innermost.filename).name}:{innermost.lineno} {innermost.name}")
        return output


def training_batch(config):
    inputs = random_inputs(config)
    inputs["labels"] = torch.tensor([0, 2, -100])
    return inputs


@pytest.mark.parametrize("variant", ["agqa", "nextqa_like"])
def test_no_host_reads_in_forward_loss_and_backward(variant):
    config = tiny_config(**(NEXTQA_LIKE if variant == "nextqa_like" else {}))
    model = MistForVideoQuestionAnswering(config).train()
    inputs = training_batch(config)
    with ScalarReads() as reads:
        model(**inputs).loss.backward()
    assert reads.places == []


@pytest.mark.parametrize("variant", ["agqa", "nextqa_like"])
def test_no_host_to_device_copies_in_forward_loss_and_backward(variant):
    config = tiny_config(**(NEXTQA_LIKE if variant == "nextqa_like" else {}))
    model = MistForVideoQuestionAnswering(config).train().to("meta")
    inputs = {name: value.to("meta") for name, value in training_batch(config).items()}
    with HostToDeviceCopies() as copies:
        model(**inputs).loss.backward()
    assert copies.places == []


def test_host_to_device_copy_detector_sees_a_copy():
    with HostToDeviceCopies() as copies:
        torch.ones(2, device="meta") + torch.ones(2).to("meta")
    assert len(copies.places) == 1 and copies.places[0].endswith("test_host_to_device_copy_detector_sees_a_copy")


def test_out_of_range_labels_are_still_refused_on_the_host():
    config = tiny_config()
    model = MistForVideoQuestionAnswering(config).eval()
    inputs = random_inputs(config)
    with pytest.raises(ValueError, match=r"labels \[7\] are out of range"):
        model(**inputs, labels=torch.tensor([0, 7, -100]))


def test_forward_and_loss_trace_as_one_graph():
    torch._dynamo.reset()
    config = tiny_config(dropout=0.0, attention_dropout=0.0)
    model = MistForVideoQuestionAnswering(config).train()
    inputs = training_batch(config)
    torch.manual_seed(0)  # the same selection noise and text-encoder dropout in both runs
    expected = model(**inputs).loss
    # fullgraph=True raises at the first graph break; the eager backend traces without compiling kernels.
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    torch.manual_seed(0)
    loss = compiled(**inputs).loss
    torch.testing.assert_close(loss, expected)
    loss.backward()
    torch._dynamo.reset()


def test_bf16_autocast_gives_float32_predictions():
    config = tiny_config(dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = MistForVideoQuestionAnswering(config).eval()
    inputs = random_inputs(config, batch_size=16, seed=1)
    with torch.no_grad():
        reference = model(**inputs).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**inputs).logits.float()
    # bf16 keeps 8 bits of mantissa: logits within 5% of their spread; the best answers agree
    assert (low - reference).abs().max() <= 0.05 * (reference.max() - reference.min())
    agreement = (low.argmax(-1) == reference.argmax(-1)).float().mean()
    assert agreement >= 0.9
