"""The lesson is computed in a process of its own (`run.generate`); a failure there is raised as
itself, as it would be without the fork, not as the child's traceback in a BackgroundFailed."""

from __future__ import annotations

import pytest

import derive.lesson
from derive.model import make_spec
from derive.run import generate


def test_a_failure_in_the_lessons_process_is_raised_as_itself(monkeypatch):
    def failing(derivation, source=None):
        raise ValueError("the lesson could not be computed")

    monkeypatch.setattr(derive.lesson, "study", failing)
    with pytest.raises(ValueError, match="the lesson could not be computed"):
        generate(make_spec(1, "sigmoid"))
