"""Layer kinds, one module each, in one registry (`KINDS`, filled by `register`).

Importing this package registers the kinds every network uses: dense, the activations
(element-wise, softmax, log-softmax), the residual sum and the loss; the other built-in kinds
(normalisation, dropout, convolution, attention, …) are listed by name in `base.BUILT_IN` and their
module is imported when a kind is first looked up in `KINDS`. A new kind is a module with a registered
`LayerKind` subclass, its message-catalog entries and its tests; nothing else names it.
"""

from derive.layers.base import KINDS, LayerKind, Node, entry_of, register
from derive.layers import activation, add, dense, loss  # noqa: F401 - the kinds of every network
from derive.layers.activation import Elementwise, LogSoftmax, Softmax, activation_kind
from derive.layers.add import Add
from derive.layers.dense import Dense
from derive.layers.loss import LossKind

__all__ = ["KINDS", "LayerKind", "Node", "entry_of", "register", "Add", "Dense", "Elementwise", "Softmax", "LogSoftmax",
           "LossKind", "activation_kind"]
