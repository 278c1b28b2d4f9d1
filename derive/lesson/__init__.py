"""What a lesson adds to the derivation, computed: a worked example with numbers, the output error of
another loss beside this one's, the largest slope of each activation, the operation counts of
backpropagation against finite differences. Each module returns plain data; `present_lesson` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    example: object  # worked_example.WorkedExample
    comparison: object | None  # loss_choice.LossComparison, when the output has a usual alternative loss
    slopes: object  # slopes.PathBound
    costs: object  # cost.Costs
    point: object = None  # the example's numbers where none is printed (images, tokens): for the gradient check
    check: tuple | None = None  # a graph document's gradient check at the example or that point (practice.py)
    practice: object | None = None  # practice.Practice: the reader's checks, for a chain's document with an example
    paths: object | None = None  # path_example.PathExample: the sum over paths at the example's numbers


SECONDS = 5.0  # CPU time each part may take; a user-written function can make exact values explode


def study(derivation, source: str | None = None) -> Lesson:
    """Everything the lesson computes for one derivation (once per run; every format prints it);
    `source`, the generated model.py, lets the reader's checks run its `loss` in float64.

    A part that cannot be computed within its time, or whose numbers leave any range a reader could
    check (a typed cosh(z)**64 three layers deep), is left out of the document rather than guessed."""
    from derive.lesson.cost import costs
    from derive.lesson.loss_choice import compare_losses
    from derive.lesson.path_example import path_example
    from derive.lesson.practice import gradient_check, practice
    from derive.lesson.slopes import path_bound
    from derive.lesson.worked_example import worked_example

    # a worked example prints every entry of every vector: not for images (channels × rows × columns)
    # (its numbers still serve the reader's gradient check of appendix B, which prints one entry)
    several_axes = any(isinstance(entry, tuple) for entry in derivation.model.sizes)
    # a network with windows (convolution, pooling) gets no point, and so no gradient check: its
    # 50-digit passes through the windows, on a smaller copy, take about 0.9 s of CPU, where all of
    # `derive cnn` has 3 s (issue 10); tokens keep theirs
    windows = any(hasattr(node.kind, "window_sizes") for node in derivation.model.network.layers)
    point = None if windows else _bounded(worked_example, derivation)
    example = None if several_axes else point
    check = None if derivation.model.is_chain or point is None else \
        _bounded(lambda d: gradient_check(d, point), derivation)  # the chain's box is practice's
    # the reader's checks beside the example they redo (only the chain's document prints them)
    checks = practice(derivation, example, source) if example is not None and derivation.model.is_chain else None
    paths = _bounded(lambda d: path_example(d, example), derivation) if checks is not None else None
    return Lesson(example, _bounded(compare_losses, derivation), path_bound(derivation), costs(derivation),
                  point=point if several_axes else None, check=check, practice=checks, paths=paths)


def _bounded(part, derivation):
    from derive.expr import TimeLimitExceeded, time_limit
    from derive.verify_symbolic import UNEVALUABLE

    try:
        with time_limit(SECONDS):
            return part(derivation)
    except (TimeLimitExceeded, *UNEVALUABLE):
        return None
