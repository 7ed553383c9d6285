"""transformers' common model tests, built for the installed transformers version inside the clone.

`ModelTesterMixin`, `ConfigTester` and `ProcessorTesterMixin` ship only in transformers' source
distribution. `common_tests_or_skip()` fetches that sdist with pip (as any machine with a package index
can), extracts the three common test files into `.hf_common_tests/hf_common_tests/` (git-ignored; the
package is renamed so it cannot clash with this project's `tests`), writes stand-ins for the few modules
they import that the sdist lacks, and puts the folder on `sys.path`. The build is reused until
transformers changes version. `HF_COMMON_TESTS_SDIST=FILE` builds from a downloaded sdist instead.
Where pip cannot reach a package index the calling test module is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".hf_common_tests"
PACKAGE = "hf_common_tests"
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py", "test_processing_common.py")

# Modules the common files import that are not in the sdist, as (path in the package, text).
STAND_INS = {
    # ModelTesterMixin derives from ExportTesterMixin: empty here, so no export tests run.
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    # Only used in an issubclass check: a model that cannot generate must not inherit it.
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    # ConfigTester passes these to a config and checks each is kept: every value differs from the default.
    "utils/test_configuration_utils.py": (
        "config_common_kwargs = {\n"
        '    "return_dict": False,\n'
        '    "output_hidden_states": True,\n'
        '    "output_attentions": True,\n'
        '    "dtype": "float16",\n'
        '    "chunk_size_feed_forward": 5,\n'
        '    "architectures": ["BertModel"],\n'
        '    "id2label": {0: "label"},\n'
        '    "label2id": {"label": "0"},\n'
        '    "problem_type": "regression",\n'
        "}\n"
    ),
}
# test_processing_common.py appends <package>/../utils to sys.path for this repository-level helper.
FETCH_HELPER = (
    "import os\n\n\n"
    "def url_to_local_path(url, return_url_if_not_found=True):\n"
    '    """The file of that name in the working directory if there is one, else the URL (no Hub here)."""\n'
    '    name = url.split("/")[-1]\n'
    "    return name if os.path.exists(name) or not return_url_if_not_found else url\n"
)
# pip's messages when no package index answers (offline, no DNS, refused proxy).
NO_INDEX_SIGNS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
    "Failed to establish a new connection",
    "Could not fetch URL",
)


class IndexUnreachable(RuntimeError):
    """pip could not reach a package index to fetch transformers' sdist."""


def _download_sdist(version: str, target: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--retries", "1", "--dest", str(target), f"transformers=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(target.glob(f"transformers-{version}.tar.gz"))
    if result.returncode == 0 and found:
        return found[0]
    output = result.stdout + result.stderr
    last_line = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
    if os.environ.get("PIP_NO_INDEX") or any(sign in output for sign in NO_INDEX_SIGNS):
        raise IndexUnreachable(
            f"transformers' common tests need the transformers=={version} sdist and pip could not fetch it "
            f"({last_line.strip()}); set HF_COMMON_TESTS_SDIST to a downloaded transformers-{version}.tar.gz"
        )
    raise RuntimeError(f"pip download of the transformers=={version} sdist failed: {last_line.strip()}")


def _extract(sdist: Path, version: str, package: Path) -> None:
    wanted = {f"tests/{name}": name for name in COMMON_FILES}
    package.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            relative = member.name.split("/", 1)[-1]  # drop the transformers-X.Y.Z/ folder
            if relative in wanted and member.isfile():
                (package / wanted.pop(relative)).write_bytes(archive.extractfile(member).read())
    if wanted:
        raise RuntimeError(f"{sdist.name} has no {', '.join(sorted(wanted.values()))}; expected transformers' common tests")
    for relative, text in STAND_INS.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    for folder in [package, *(path for path in package.rglob("*") if path.is_dir())]:
        (folder / "__init__.py").touch()
    (package / "TRANSFORMERS_VERSION").write_text(version + "\n")


def build_common_tests() -> Path:
    """The folder to put on `sys.path` for `import hf_common_tests`, built now if it is missing or stale."""
    import transformers

    version = transformers.__version__
    stamp = CACHE / PACKAGE / "TRANSFORMERS_VERSION"
    if stamp.exists() and stamp.read_text().strip() == version:
        return CACHE
    with tempfile.TemporaryDirectory() as scratch:
        given = os.environ.get("HF_COMMON_TESTS_SDIST")
        sdist = Path(given) if given else _download_sdist(version, Path(scratch))
        if not sdist.is_file():
            raise FileNotFoundError(f"HF_COMMON_TESTS_SDIST={given}: no such file; expected transformers-{version}.tar.gz")
        building = Path(tempfile.mkdtemp(prefix=".hf_common_tests.", dir=REPO))
        try:
            _extract(sdist, version, building / PACKAGE)
            (building / "utils").mkdir()
            (building / "utils" / "fetch_hub_objects_for_ci.py").write_text(FETCH_HELPER)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    shutil.rmtree(CACHE, ignore_errors=True)
    building.rename(CACHE)  # whole or absent: a killed build leaves no half-written cache
    return CACHE


_state: dict = {}


def common_tests_or_skip() -> None:
    """Make `hf_common_tests` importable, or skip the calling test module where no package index answers."""
    if "skip" not in _state and "path" not in _state:
        try:
            _state["path"] = str(build_common_tests())
        except IndexUnreachable as error:
            _state["skip"] = str(error)
    if "skip" in _state:
        pytest.skip(_state["skip"], allow_module_level=True)
    if _state["path"] not in sys.path:
        sys.path.insert(0, _state["path"])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def register_external_model(config_class, base_model_class, heads: dict[str, list]) -> None:
    """Enter an out-of-tree model in the name tables that the common tests consult to decide what to check.

    Without it `test_training` takes the base model for a head, `test_torch_save_load` skips, and heads get no
    `labels` from `_prepare_for_class(return_labels=True)`. `heads` maps a task of `modeling_auto`'s
    `MODEL_FOR_<TASK>_MAPPING_NAMES` tables (e.g. `"video_classification"`) to its classes.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto import modeling_auto

    model_type = config_class.model_type
    AutoConfig.register(model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, base_model_class, exist_ok=True)
    modeling_auto.MODEL_MAPPING_NAMES[model_type] = base_model_class.__name__
    for task, classes in heads.items():
        table = getattr(modeling_auto, f"MODEL_FOR_{task.upper()}_MAPPING_NAMES")
        names = tuple(cls.__name__ for cls in classes)
        table[model_type] = names[0] if len(names) == 1 else names
