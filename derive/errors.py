"""The one exception type users see: a one-line message naming the bad value and what is accepted."""


class DeriveError(Exception):
    """A user-facing error; its message is a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class VerificationFailed(DeriveError):
    """The tool's own checks found a derivative it would have printed to be wrong."""


def ensure(holds: bool, claim: str) -> None:
    """A fact the document is about to print, checked: unlike `assert`, kept under `python -O`, and
    failing the run as a verification failure (nothing is written) rather than a bare AssertionError."""
    if not holds:
        raise VerificationFailed(f"a printed claim does not hold: {claim}")
