"""The network the user asked for, as layers with local rules (see `layers`).

`make_spec` turns the command-line strings into a validated `MLPSpec` (resolving names against the
catalog, so every mistake is reported before any work is done); `build_model` turns a spec into
the chain of layers Dense¹ → g¹ → … → Denseᴸ → gᴸ → loss that `derivation` differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.catalog import Activation, Loss, resolve_activation, resolve_loss
from derive.errors import DeriveError
from derive.layers import ActivationLayer, Dense, LossLayer
from derive.notation import LayerRef
from derive.spec import MLPSpec, parse_activation_list, parse_formats, parse_lang, parse_layers, parse_sizes


def make_spec(
    layers: str | int,
    act: str,
    out_act: str | None = None,
    loss: str = "mse",
    sizes: str | None = None,
    formats: str | None = None,
    lang: str | None = None,
) -> MLPSpec:
    """Validate the user's choices; raise DeriveError with a one-line message on the first bad one."""
    depth = parse_layers(layers)
    loss_entry = resolve_loss(loss)
    names = parse_activation_list(act, depth)
    hidden = tuple(resolve_activation(n).name for n in names[:-1])
    for name in hidden:
        if resolve_activation(name).output_only:
            raise DeriveError(
                f"invalid value for --act: {name!r} can only be the output activation (use --out-act); "
                "hidden layers accept identity, sigmoid, tanh, relu"
            )
    output = out_act if out_act is not None else (loss_entry.default_output or names[-1])
    output_entry = resolve_activation(output, option="--out-act" if out_act is not None else "--act")
    if loss_entry.needs_unit_interval and not output_entry.in_unit_interval:
        raise DeriveError(
            f"invalid combination: loss {loss_entry.name!r} takes log(a) and needs outputs in (0, 1), "
            f"but output activation {output_entry.name!r} can leave that range; use --out-act sigmoid or softmax"
        )
    if output_entry.name in loss_entry.refused_outputs:
        raise DeriveError(
            f"invalid combination: loss {loss_entry.name!r} treats every output as an independent probability, "
            f"which output activation {output_entry.name!r} does not give; use --out-act sigmoid"
        )
    size_tuple = parse_sizes(sizes, depth)
    if output_entry.is_softmax and size_tuple[-1] < 2:
        raise DeriveError(f"invalid value for --sizes: softmax output needs at least 2 units, got n{depth} = {size_tuple[-1]}")
    return MLPSpec(depth, hidden + (output_entry.name,), loss_entry.name, size_tuple, parse_formats(formats),
                   parse_lang(lang))


@dataclass(frozen=True)
class Model:
    """The layers of an MLP and its loss, ready to be differentiated."""

    spec: MLPSpec
    activations: tuple[Activation, ...]  # layer 1 … L
    loss: Loss

    @property
    def depth(self) -> int:
        return self.spec.layers

    def dense(self, layer: int | LayerRef) -> Dense:
        return Dense(_ref(layer))

    def activation_layer(self, layer: int) -> ActivationLayer:
        return ActivationLayer(LayerRef(layer), self.activations[layer - 1])

    @property
    def loss_layer(self) -> LossLayer:
        return LossLayer(LayerRef(self.depth), self.loss)

    @property
    def uniform_hidden_activation(self) -> Activation | None:
        """The activation every hidden layer shares, if they all share one (and there is one)."""
        hidden = set(self.activations[:-1])
        return next(iter(hidden)) if len(hidden) == 1 else None


def _ref(layer: int | LayerRef) -> LayerRef:
    return layer if isinstance(layer, LayerRef) else LayerRef(layer)


def build_model(spec: MLPSpec) -> Model:
    activations = tuple(resolve_activation(name) for name in spec.activations)
    return Model(spec, activations, resolve_loss(spec.loss))
