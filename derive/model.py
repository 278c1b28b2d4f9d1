"""The network the user asked for, as layers with local rules (see `layers`).

`make_spec` turns the command-line strings into a validated `MLPSpec` (resolving names against the
catalog, so every mistake is reported before any work is done); `build_model` turns a spec into
the chain of layers Dense¹ → g¹ → … → Denseᴸ → gᴸ → loss that `derivation` differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from derive.catalog import Activation, Loss, resolve_activation, resolve_loss
from derive.catalog.activations import hidden_names
from derive.catalog.optimizers import resolve_optimizer
from derive.errors import DeriveError
from derive.layers import Dense, LossKind, Node, activation_kind
from derive.network import Network
from derive.notation import LayerRef, Q
from derive.layers.penalty import Penalty
from derive.spec import (
    DEFAULT_DETAIL,
    MLPSpec,
    NetSpec,
    parse_activation_list,
    parse_detail,
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
    detail: str | None = None,
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
    detail_name = parse_detail(detail)
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
        detail=detail_name,
    )


@dataclass(frozen=True)
class Model:
    """The network a spec describes, as a graph of nodes ending in its loss, and the catalog entries
    it was built from. `derive mlp` gives the chain Dense¹ → g¹ → … → Denseᴸ → gᴸ → loss."""

    spec: MLPSpec | NetSpec
    network: Network
    activations: tuple[Activation, ...]  # of the activation nodes, in forward order (MLP: layer 1 … L)
    loss: Loss
    penalty: Penalty | None = None  # --l2 / --l1 (see `layers.penalty`)

    @property
    def depth(self) -> int:
        """The number of layers (an MLP's weight layers)."""
        return len(self.network.sizes) - 1

    @property
    def is_chain(self) -> bool:
        """The network is an MLP: layer l is a dense node reading a⁽ˡ⁻¹⁾ and an activation node."""
        layers = self.network.layers
        if len(layers) != 2 * self.depth:
            return False
        for l in range(1, self.depth + 1):
            dense, act = layers[2 * l - 2], layers[2 * l - 1]
            if not (isinstance(dense.kind, Dense) and dense.inputs == (Q("a", l - 1),) and dense.layer == LayerRef(l)
                    and getattr(act.kind, "activation", None) is not None and act.inputs == (Q("z", l),)):
                return False
        return True

    @property
    def uniform_hidden_activation(self) -> Activation | None:
        """The activation every hidden layer of a chain shares, if they all share one (and there is one)."""
        if not self.is_chain:
            return None
        hidden = set(self.activations[:-1])
        return next(iter(hidden)) if len(hidden) == 1 else None

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.network.sizes


def chain(sizes: tuple[int, ...], activations: tuple[Activation, ...], loss: Loss, penalty: Penalty | None) -> Network:
    """The MLP as a graph: layer l is a dense node (z⁽ˡ⁾) and an activation node (a⁽ˡ⁾)."""
    nodes = []
    for layer, activation in enumerate(activations, start=1):
        ref = LayerRef(layer)
        nodes.append(Node(Dense(sizes[layer]), ref, (Q("a", layer - 1),)))
        nodes.append(Node(activation_kind(activation), ref, (Q("z", layer),)))
    nodes.append(Node(LossKind(loss, regularised=penalty is not None), LayerRef(len(activations)), (Q("a", len(activations)),)))
    return Network(tuple(nodes), tuple(sizes), penalty)


def build_model(spec: MLPSpec | NetSpec) -> Model:
    if isinstance(spec, NetSpec):
        return _network_model(spec)
    activations = tuple(activation_entry(name) for name in spec.activations)
    loss = loss_entry_for(spec.loss, activations[-1])
    penalty = Penalty.from_spec(spec)
    return Model(spec, chain(spec.sizes, activations, loss, penalty), activations, loss, penalty)


# --------------------------------------------------------------------------------------------------
# network files


def make_net_spec(path: str, formats: str | None = None, *, lang: str | None = None,
                  detail: str | None = None) -> NetSpec:
    """Read a network file and check that it builds: every error is reported before any work. Only a
    chain of dense layers has the MLP's document, and with it the three levels of `--detail`; any
    other network has one document, the lesson."""
    from derive.netfile import read_network

    level = parse_detail(detail)
    spec = read_network(path, formats=parse_formats(formats), lang=parse_lang(lang))
    chain = False
    if isinstance(spec, NetSpec):  # recurrent layers: the spec of `derive rnn`, checked when it was made
        chain = _network_model(spec).is_chain
        spec = replace(spec, detail=level)
    if level != DEFAULT_DETAIL and not chain:
        raise DeriveError(f"invalid value for --detail: {detail!r}; a network that is not a chain of dense layers "
                          f"has one document; accepted for it: {DEFAULT_DETAIL}")
    return spec


def _network_model(spec: NetSpec) -> Model:
    """The graph of a network file: each [[layers]] table is layer l = 1, 2, …, its kind's node (and
    an activation node when it has one); the loss reads the last output."""
    from derive.layers import KINDS
    from derive.netfile import NetFileError

    input_shape = spec.input_units if isinstance(spec.input_units, tuple) else (spec.input_units,)
    from derive.netfile import INPUT_ROLES
    from derive.notation import Axis

    shapes = {Q("a", 0): input_shape}
    axes = {Q("a", 0): tuple(Axis(role, LayerRef(0)) for role in INPUT_ROLES[len(input_shape)])}
    from derive.netfile import INPUT_NAME

    sizes, named, nodes, activations = [_size_entry(input_shape)], {INPUT_NAME: Q("a", 0)}, [], []
    previous = Q("a", 0)
    for l, layer in enumerate(spec.layers, start=1):
        where = f"{spec.path}: layers[{l}] (kind {layer.kind!r})"
        cls = KINDS[layer.kind]
        try:
            kind = cls.build(dict(layer.options))
        except DeriveError as error:
            raise NetFileError(f"{where}: {_reworded(error)}") from None
        inputs = (named[layer.input] if layer.input else previous,)
        if cls.inputs == 2:
            inputs += (named[layer.skip],)
        input_shapes = tuple(shapes[q] for q in inputs)
        try:
            kind = kind.fit(input_shapes if len(input_shapes[0]) > 1 else tuple(s[0] for s in input_shapes))
            node = Node(kind, LayerRef(l), inputs, tuple(axes[q] for q in inputs))
            shape = tuple(kind.output_shape(node, input_shapes))
        except DeriveError as error:
            raise NetFileError(f"{where}: {_reworded(error)}") from None
        parts = kind.parts(node)
        nodes.extend(parts)
        node = parts[-1]
        output = node.output
        shapes[output], axes[output] = shape, node.out_axes
        if getattr(kind, "activation", None) is not None:
            activations.append(kind.activation)
        if layer.activation is not None:
            try:
                entry = activation_entry(layer.activation, "activation")
            except DeriveError as error:
                raise NetFileError(f"{where}: activation: {_reworded(error)}") from None
            node = Node(activation_kind(entry), LayerRef(l), (output,), (node.out_axes,))
            nodes.append(node)
            activations.append(entry)
            output = node.output
            shapes[output], axes[output] = shape, node.out_axes
        sizes.append(_size_entry(shape))
        previous = output
        if layer.name is not None:
            named[layer.name] = output
    last = nodes[-1]
    output_entry = getattr(last.kind, "activation", None) or activation_entry("identity")
    try:
        if isinstance(sizes[-1], tuple):
            raise DeriveError(f"the loss needs a vector of outputs, but the last layer's output has the shape "
                              f"{list(sizes[-1])}; end with a layer of units (dense)")
        loss = _checked_loss(spec.loss, output_entry, sizes[-1], len(spec.layers))
    except DeriveError as error:
        raise NetFileError(f"{spec.path}: {_reworded(error)}") from None
    penalty = Penalty.from_spec(spec)
    nodes.append(Node(LossKind(loss, regularised=penalty is not None), LayerRef(len(spec.layers)), (previous,)))
    return Model(spec, Network(tuple(nodes), tuple(sizes), penalty), tuple(activations), loss, penalty)


def _size_entry(shape: tuple[int, ...]) -> int | tuple[int, ...]:
    """A layer's entry in the network's sizes: its number of units, or its shape."""
    return shape[0] if len(shape) == 1 else shape


def _checked_loss(text: str, output: Activation, units: int, depth: int) -> Loss:
    """The loss named by `text` after the given output activation, with the checks of `make_spec`."""
    loss_entry = resolve_loss(text)
    if loss_entry.required_output and output.name != loss_entry.required_output:
        raise DeriveError(f"loss {loss_entry.name!r} takes log-probabilities, which the last layer "
                          f"({output.spec_text}) does not give; end with activation = \"{loss_entry.required_output}\"")
    if loss_entry.needs_unit_interval and not output.in_unit_interval:
        raise DeriveError(f"loss {loss_entry.name!r} takes log(a) and needs outputs in (0, 1), but the last "
                          f"layer's activation {output.spec_text!r} can leave that range; end with sigmoid or softmax")
    if output.name in loss_entry.refused_outputs:
        raise DeriveError(f"loss {loss_entry.name!r} treats every output as an independent probability, which "
                          f"{output.name!r} does not give; end with sigmoid")
    if output.is_vector and units < 2:
        raise DeriveError(f"a {output.name} output needs at least 2 units, the last layer has {units}")
    return loss_entry_for(loss_entry.spec_text, output)


def _reworded(error: DeriveError) -> str:
    import re

    return re.sub(r"^invalid (value for [-\w]+|combination): ", "", str(error))
