"""`python -m tests.mist_cli COMMAND ...`: the `mist` command with the test presets registered, for tests that
start it in a new process (`torchrun`, `accelerate launch`) with `--preset tiny`."""

import sys

from tests.helpers import register_test_presets
from training.cli import main

if __name__ == "__main__":
    register_test_presets()
    sys.exit(main())
