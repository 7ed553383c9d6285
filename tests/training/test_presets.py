"""The presets and the variants table they are built from: torch-free, so `mist <command> --help` stays fast."""

from configuration import presets, variants
from tests.helpers import REPO_ROOT, run_python

CHECK = """
import sys
import configuration.presets, configuration.variants
print(sorted(name for name in ("torch", "transformers", "modeling_mist") if name in sys.modules))
"""


def test_importing_the_presets_imports_no_torch():
    result = run_python(["-c", CHECK], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_every_variant_preset_is_its_table_entry():
    for name, variant in variants.VARIANTS.items():
        preset = presets.get_preset(name)
        assert (preset.model, preset.task, preset.text_encoder) == (
            variant.config_kwargs,
            variant.task,
            variant.text_encoder,
        ), name
    assert sorted(variants.REFERENCE_VARIANTS) == ["agqa", "nextqa", "star"]


def test_the_tiny_preset_is_the_test_suites_own():
    result = run_python(["-c", "from configuration.presets import PRESETS; print(' '.join(PRESETS))"], cwd=REPO_ROOT)
    assert result.stdout.split() == ["agqa", "nextqa", "star", "egoschema", "activitynetqa", "demo"]
    assert presets.get_preset("tiny").description == "tiny sizes for tests"  # registered by tests/conftest.py
