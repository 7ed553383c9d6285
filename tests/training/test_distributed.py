"""Two processes (gloo, CPU) train like one process with the same global batch.

With selection noise and dropout off (tiny preset: `train_selection="topk"`, dropout 0, a text
encoder without dropout) training is deterministic, so after a few steps the weights of a
2 x 4 run and a 1 x 8 run agree to float tolerance. Plain SGD: Adam would turn the float noise of
exactly-zero gradients (e.g. the answer projection's bias, which the softmax ignores) into
learning-rate-sized steps. The patch encoder's BatchNorm sees per-process batches, but its inputs
are the grid's box descriptors, the same for every video, so its batch statistics do not depend on
the batch; only the unbiased running variance differs, by the factor n/(n-1) of the batch size.
"""

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import run_python

pytestmark = pytest.mark.slow

LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node", "2"],
    # accelerate 1.x starts several CPU processes through its multi-GPU (torchrun) launcher
    "accelerate": [
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
    ],
}


def train_command(tiny_task, text_encoder_dir, output_dir, batch_size: int) -> list[str]:
    questions, features = tiny_task
    return [
        "-m", "tests.mist_cli", "train",  # `mist` with the test presets (`--preset tiny`)
        "--dataset", str(questions), "--features", str(features), "--output-dir", str(output_dir),
        "--preset", "tiny", "--text-encoder", str(text_encoder_dir), "--clip_pretrained", "none",
        "--max_steps", "3", "--optim", "sgd", "--learning_rate", "5", "--max_grad_norm", "0",
        "--per_device_train_batch_size", str(batch_size), "--eval_split", "none", "--test_split", "none",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one_process(tiny_task, text_encoder_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("one-process")
    result = run_python(train_command(tiny_task, text_encoder_dir, output_dir, batch_size=8), cwd=output_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    initial_dir = tmp_path_factory.mktemp("initial")
    command = train_command(tiny_task, text_encoder_dir, initial_dir, batch_size=8) + ["--learning_rate", "0"]
    assert run_python(command, cwd=initial_dir).returncode == 0
    return load_file(str(output_dir / "model.safetensors")), load_file(str(initial_dir / "model.safetensors"))


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_match_one_process(launcher, one_process, tiny_task, text_encoder_dir, tmp_path):
    single, initial = one_process
    command = LAUNCHERS[launcher] + train_command(tiny_task, text_encoder_dir, tmp_path, batch_size=4)
    result = run_python(command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("questions used") == 2, "expected two training processes"
    distributed = load_file(str(tmp_path / "model.safetensors"))

    moved = max((single[name] - initial[name]).abs().max().item() for name in single if "running" not in name)
    assert moved > 5e-3, "the runs must actually train for the comparison to mean anything"
    for name in single:
        if name.endswith("running_var"):
            torch.testing.assert_close(
                distributed[name], single[name], rtol=1e-4, atol=0, msg=lambda message, name=name: f"{name}: {message}"
            )
        else:
            torch.testing.assert_close(
                distributed[name],
                single[name],
                rtol=1e-4,
                atol=1e-5,
                msg=lambda message, name=name: f"{name}: {message}",
            )
