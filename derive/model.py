"""The network the user asked for, as layers with local rules (see `layers`).

`make_spec` turns the command-line strings into a validated `MLPSpec` (resolving names against the
catalog, so every mistake is reported before any work is done); `build_model` turns a spec into
the chain of layers Dense¹ → g¹ → … → Denseᴸ → gᴸ → loss that `derivation` differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from derive.catalog import Activation, Loss, resolve_activation, resolve_loss
from derive.catalog.activations import hidden_names
from derive.catalog.optimizers import resolve_optimizer
from derive.errors import DeriveError
from derive.layers import Dense, LossKind, Node, activation_kind
from derive.network import Network
from derive.notation import LayerRef, Q
from derive.regularisation import Penalty
from derive.spec import (
    MLPSpec,
    parse_activation_list,
    parse_formats,
    parse_lang,
    parse_layers,
    parse_penalty,
    parse_sizes,
)


@lru_cache(maxsize=256)
def activation_entry(text: str, option: str = "--act") -> Activation:
    """Resolve once per text: a user-written expression is parsed and checked only once."""
    return resolve_activation(text, option=option)


@lru_cache(maxsize=256)
def loss_entry_for(text: str, output: Activation) -> Loss:
    """The loss named by `text`, checked against the output activation it follows.

    A user-written loss gets the least restrictive targets it is defined for (see catalog.custom).
    """
    loss = resolve_loss(text)
    if loss.is_custom:
        from derive.catalog.custom import fit_targets

        return fit_targets(loss, output)
    return loss


def make_spec(
    layers: str | int,
    act: str,
    out_act: str | None = None,
    loss: str = "mse",
    sizes: str | None = None,
    formats: str | None = None,
    *,
    lang: str | None = None,
    optimizer: str | None = None,
    l2: str | None = None,
    l1: str | None = None,
    penalise_bias: bool = False,
) -> MLPSpec:
    """Validate the user's choices; raise DeriveError with a one-line message on the first bad one."""
    depth = parse_layers(layers)
    loss_entry = resolve_loss(loss)
    names = parse_activation_list(act, depth)
    hidden = tuple(activation_entry(n) for n in names[:-1])
    for entry in hidden:
        if entry.output_only:
            raise DeriveError(
                f"invalid value for --act: {entry.name!r} can only be the output activation (use --out-act); "
                f"hidden layers accept {', '.join(hidden_names())} or an expression in z"
            )
    output = out_act if out_act is not None else (loss_entry.default_output or names[-1])
    output_entry = activation_entry(output, "--out-act" if out_act is not None else "--act")
    if loss_entry.required_output and output_entry.name != loss_entry.required_output:
        raise DeriveError(
            f"invalid combination: loss {loss_entry.name!r} takes log-probabilities, which output activation "
            f"{output_entry.spec_text!r} does not give; use --out-act {loss_entry.required_output}"
        )
    if loss_entry.needs_unit_interval and not output_entry.in_unit_interval:
        raise DeriveError(
            f"invalid combination: loss {loss_entry.name!r} takes log(a) and needs outputs in (0, 1), "
            f"but output activation {output_entry.spec_text!r} can leave that range; use --out-act sigmoid or softmax"
        )
    if output_entry.name in loss_entry.refused_outputs:
        raise DeriveError(
            f"invalid combination: loss {loss_entry.name!r} treats every output as an independent probability, "
            f"which output activation {output_entry.name!r} does not give; use --out-act sigmoid"
        )
    loss_entry = loss_entry_for(loss_entry.spec_text, output_entry)
    size_tuple = parse_sizes(sizes, depth)
    if output_entry.is_vector and size_tuple[-1] < 2:
        raise DeriveError(
            f"invalid value for --sizes: {output_entry.name} output needs at least 2 units, got n{depth} = {size_tuple[-1]}"
        )
    l2_text, l1_text = parse_penalty(l2, "--l2"), parse_penalty(l1, "--l1")
    if penalise_bias and l2_text is None and l1_text is None:
        raise DeriveError("invalid combination: --penalise-bias needs a penalty; add --l2 λ or --l1 λ")
    format_tuple = parse_formats(formats)
    language = parse_lang(lang)
    choice = resolve_optimizer(optimizer)
    return MLPSpec(
        depth,
        tuple(e.spec_text for e in hidden) + (output_entry.spec_text,),
        loss_entry.spec_text,
        size_tuple,
        format_tuple,
        lang=language,
        optimizer=choice,
        l2=l2_text,
        l1=l1_text,
        penalise_bias=bool(penalise_bias),
    )


@dataclass(frozen=True)
class Model:
    """The network the spec describes (a chain Dense¹ → g¹ → … → Denseᴸ → gᴸ → loss) and the catalog
    entries it was built from."""

    spec: MLPSpec
    network: Network
    activations: tuple[Activation, ...]  # layer 1 … L
    loss: Loss
    penalty: Penalty | None = None  # --l2 / --l1 (see `regularisation`)

    @property
    def depth(self) -> int:
        return self.spec.layers

    @property
    def uniform_hidden_activation(self) -> Activation | None:
        """The activation every hidden layer shares, if they all share one (and there is one)."""
        hidden = set(self.activations[:-1])
        return next(iter(hidden)) if len(hidden) == 1 else None


def chain(sizes: tuple[int, ...], activations: tuple[Activation, ...], loss: Loss, penalty: Penalty | None) -> Network:
    """The MLP as a graph: layer l is a dense node (z⁽ˡ⁾) and an activation node (a⁽ˡ⁾)."""
    nodes = []
    for layer, activation in enumerate(activations, start=1):
        ref = LayerRef(layer)
        nodes.append(Node(Dense(sizes[layer]), ref, (Q("a", layer - 1),)))
        nodes.append(Node(activation_kind(activation), ref, (Q("z", layer),)))
    nodes.append(Node(LossKind(loss, regularised=penalty is not None), LayerRef(len(activations)), (Q("a", len(activations)),)))
    return Network(tuple(nodes), tuple(sizes), penalty)


def build_model(spec: MLPSpec) -> Model:
    activations = tuple(activation_entry(name) for name in spec.activations)
    loss = loss_entry_for(spec.loss, activations[-1])
    penalty = Penalty.from_spec(spec)
    return Model(spec, chain(spec.sizes, activations, loss, penalty), activations, loss, penalty)
