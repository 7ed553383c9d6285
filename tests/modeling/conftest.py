from tests.modeling.mist_testing import config, inputs  # noqa: F401  (fixtures)
