"""Settings shared by every unit test: the Hypothesis profiles.

``unit`` (the default, what ``make unit`` runs) keeps property tests and the rollout state machine
fast; ``thorough`` runs each a few thousand times (``HYPOTHESIS_PROFILE=thorough``). Neither has a
deadline: the machine is shared and a slow example is not a failure. Tests that pass their own
``@settings`` keep them.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("unit", max_examples=100, stateful_step_count=40, deadline=None)
settings.register_profile("thorough", max_examples=3000, stateful_step_count=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))
