import os

from hypothesis import settings

from validation.strategies import register_profiles

register_profiles()
settings.load_profile(
    os.environ.get("REFSNN_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)
