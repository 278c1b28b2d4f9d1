"""Registries of the building blocks users can name: activations and losses.

An entry is a name, a SymPy expression and display names. Derivatives are never stored here: the
engine computes them, so adding an entry is one line and it is derived and tested like every other.
A user-written expression (`derive.catalog.custom`) becomes an entry of the same kind.
"""

from derive.catalog.activations import ACTIVATIONS, Activation, resolve_activation
from derive.catalog.losses import LOSSES, Loss, resolve_loss
from derive.catalog.params import Parameter

__all__ = ["ACTIVATIONS", "Activation", "resolve_activation", "LOSSES", "Loss", "resolve_loss", "Parameter"]
