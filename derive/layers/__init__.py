"""Layer kinds, one module each, in one registry (`KINDS`, filled by `register`).

Importing this package registers the built-in kinds: dense, the activations (element-wise,
softmax, log-softmax), the residual sum and the loss. A new kind is a module with a registered
`LayerKind` subclass, its message-catalog entries and its tests; nothing else names it.
"""

from derive.layers.base import KINDS, LayerKind, Node, entry_of, register
from derive.layers import activation, add, dense, loss  # noqa: F401 - registers the built-in kinds
from derive.layers import layernorm, rmsnorm  # noqa: F401 - the normalisations over the features
from derive.layers import dropout  # noqa: F401 - inverted dropout
from derive.layers import batchnorm  # noqa: F401 - batch normalisation (couples the samples)
from derive.layers import conv  # noqa: F401 - convolution kinds
from derive.layers import attention  # noqa: F401 - multi-head self-attention (couples the tokens)
from derive.layers import linear  # noqa: F401 - a linear map per token of a sequence
from derive.layers import position  # noqa: F401 - learned positional embeddings of a sequence
from derive.layers import recurrent  # noqa: F401 - the Elman cell, the last step, a dense head per step
from derive.layers.activation import Elementwise, LogSoftmax, Softmax, activation_kind
from derive.layers.add import Add
from derive.layers.dense import Dense
from derive.layers.loss import LossKind

__all__ = ["KINDS", "LayerKind", "Node", "entry_of", "register", "Add", "Dense", "Elementwise", "Softmax", "LogSoftmax",
           "LossKind", "activation_kind"]
