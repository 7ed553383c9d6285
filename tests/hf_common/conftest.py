"""Build transformers' common model tests (ModelTesterMixin, ConfigTester) for the installed version.

They ship only in transformers' source distribution. The team's harness (../shared/tools/hf-common-tests)
extracts them; it writes next to itself, so it is copied into `.hf_common_tests/` (git-ignored) and built
once per clone, before pytest imports the test module that subclasses the mixins.
"""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO.parent / "shared" / "tools" / "hf-common-tests"
HARNESS = REPO / ".hf_common_tests"


def build_harness() -> Path:
    import transformers

    built = HARNESS / "hf_common_tests" / "TRANSFORMERS_VERSION"
    if built.exists() and built.read_text().strip() == transformers.__version__:
        return HARNESS
    if not SOURCE.is_dir():
        raise RuntimeError(f"transformers' common tests need the team harness at {SOURCE} (the shared folder beside the clone)")
    shutil.rmtree(HARNESS, ignore_errors=True)
    shutil.copytree(SOURCE, HARNESS)
    for path in HARNESS.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    HARNESS.chmod(HARNESS.stat().st_mode | 0o200)
    subprocess.run([sys.executable, str(HARNESS / "setup_hf_tests.py"), "--force"], check=True, stdout=subprocess.DEVNULL)
    return HARNESS


sys.path.insert(0, str(build_harness()))
import hf_harness  # noqa: E402

hf_harness.setup_paths()
