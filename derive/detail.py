"""How much of the derivation a document prints (`--detail`), as data the document builder reads.

Three readers want three documents from the same derivation and the same checks: a first-time
student the lesson, a lecturer every intermediate step, an engineer the result and its certificate.
The verification runs the same whatever the detail; only the sections printed, and how much of
each, change. A section named in `BRIEF` prints its short form (the rule and the computed figures
without the long derivation); `full` prints every section in full.
"""

from __future__ import annotations

from derive.spec import DEFAULT_DETAIL, DETAILS

# the sections each detail prints (None: every section the network has); an engineer's summary keeps
# the network, its symbols, the four equations boxed, the algorithm beside its code, the code and the
# certificate
SECTIONS: dict[str, tuple[str, ...] | None] = {
    "summary": ("network", "notation", "summary", "algorithm", "code", "verification"),
    "lesson": None,
    "full": None,
}

# the sections printed in their short form: the lesson's appendix of checks is a box to try by hand;
# the summary also keeps only the network's shape and where the code is
BRIEF: dict[str, tuple[str, ...]] = {
    "summary": ("network", "code", "verification"),
    "lesson": ("verification",),
    "full": (),
}

# the sections a detail folds into another: the lesson's one training section (the update rule's)
# says what the optimizer and the initialisation do in a few sentences; `full` derives each in its own
FOLDED: dict[str, tuple[str, ...]] = {"lesson": ("optimizer", "initialisation")}

# the catalog key of a paragraph that opens a document at this detail (what it is and how it numbers)
OPENING: dict[str, str] = {"summary": "detail.summary_intro"}

assert set(SECTIONS) == set(BRIEF) == set(DETAILS) and DEFAULT_DETAIL in DETAILS


def chosen_sections(detail: str, keys: list[str]) -> list[str]:
    """The sections of the document at this detail, in document order."""
    wanted, folded = SECTIONS[detail], FOLDED.get(detail, ())
    return [k for k in keys if (wanted is None or k in wanted) and k not in folded]


def brief(detail: str, key: str) -> bool:
    """Whether section `key` prints its short form at this detail."""
    return key in BRIEF[detail]


def is_lesson(detail: str) -> bool:
    """Whether a document at this detail is the lesson: it reads the catalog's shorter messages
    (`lesson_*` tables) and leaves to `full` what a first reading does not need. The one test of it:
    the document builder passes `detail` to `Text`, and every section asks `text.is_lesson`."""
    return detail == "lesson"


def omits_steps(detail: str) -> bool:
    """Whether a document at this detail leaves out derivations that `full` prints (it says so once)."""
    return detail != "full"
