"""`python -m training.cli`: the `mist` command, for launchers that take a module (torchrun, accelerate)."""

import sys

from . import main

sys.exit(main())
