"""Every test session: the test suite's `tiny` preset is a `--preset` choice (`tests.helpers.TINY`)."""

from tests.helpers import register_test_presets

register_test_presets()
