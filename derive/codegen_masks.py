"""The code of the arrays a network reads that the derivation holds fixed: dropout masks.

The generated module draws them itself. `dropout_mode` says how: "eval" (the default) puts each
mask's expectation 1 − p in its place, so that a dropout layer passes its input on unchanged;
"train" draws fresh masks (entries 0 with probability p, else 1) on every forward pass; "fixed"
uses given masks, as the derivation does (the verification and the PyTorch cross-check use it).
"""

from __future__ import annotations

from derive.layers import Node
from derive.network import Network


def mask_line(network: Network, node: Node, printer) -> list[tuple[str, str]]:
    """(target, value) of the masks a node reads, drawn in the shape of its input."""
    read = printer._print(node.input(True).symbol)
    return [(q.batched().code(), f'_mask("{q.batched().code()}", {read}.shape, {read}.dtype)')
            for q in node.kind.data_inputs(node)]


def constant_lines(network: Network, printer) -> list[tuple[str, str, str]]:
    """(name, value, comment) of the fixed numbers of the formulas (dropout's p⁽ˡ⁾, the width of an
    attention head), each with the comment its kind gives."""
    out, seen = [], set()
    for node in network.layers:
        for symbol, value in node.kind.constants(node).items():
            if symbol not in seen:
                seen.add(symbol)
                out.append((printer._print(symbol), repr(float(value)), node.kind.constant_comment))
    return out


def helper_lines(network: Network, printer) -> list[str]:
    """dropout_mode, draw_masks and _mask, when the network has masks; else nothing."""
    if not network.data_inputs:
        return []
    probabilities = ", ".join(f'"{q.batched().code()}": {printer._print(sym)}'
                              for (node, q), sym in zip(network.data_inputs,
                                                        [next(iter(n.kind.constants(n))) for n, _ in network.data_inputs]))
    layers = ", ".join(f'"{q.batched().code()}": {node.layer.number}' for node, q in network.data_inputs)
    return [
        f"DROPOUT = {{{probabilities}}}  # the drop probability p of each mask",
        f"_MASK_LAYERS = {{{layers}}}  # the layer whose size each mask has",
        '_DROPOUT_MODE = {"mode": "eval", "rng": None, "masks": {}}',
        "",
        "",
        'def dropout_mode(mode, *, rng=None, masks=None):',
        '    """How forward() sets the dropout masks: "eval" (the default) puts each mask\'s expectation 1 − p',
        '    in its place, so that dropout passes its input on unchanged; "train" draws fresh masks from',
        '    `rng` on every forward pass (each entry 0 with probability p, else 1); "fixed" uses `masks`, a',
        '    dict as draw_masks returns it (the derivation holds the masks fixed like this)."""',
        '    if mode not in ("eval", "train", "fixed"):',
        '        raise ValueError(f"dropout_mode: {mode!r}; expected \'eval\', \'train\' or \'fixed\'")',
        '    if mode == "train" and rng is None:',
        '        raise ValueError("dropout_mode(\'train\') needs rng, a numpy Generator")',
        '    if mode == "fixed" and (masks is None or set(masks) != set(DROPOUT)):',
        '        raise ValueError(f"dropout_mode(\'fixed\') needs masks with the keys {sorted(DROPOUT)}")',
        '    _DROPOUT_MODE.update(mode=mode, rng=rng, masks=dict(masks or {}))',
        "",
        "",
        "def draw_masks(sizes, m, rng, dtype=np.float64):",
        '    """One mask per dropout layer for a minibatch of m samples: 0 with probability p, else 1."""',
        "    return {name: (rng.random((sizes[layer], m)) >= DROPOUT[name]).astype(dtype) for name, layer in _MASK_LAYERS.items()}",
        "",
        "",
        "def _mask(name, shape, dtype):",
        '    mode = _DROPOUT_MODE["mode"]',
        '    if mode == "eval":',
        "        return np.full(shape, 1 - DROPOUT[name], dtype)",
        '    if mode == "train":',
        '        return (_DROPOUT_MODE["rng"].random(shape) >= DROPOUT[name]).astype(dtype)',
        '    mask = np.asarray(_DROPOUT_MODE["masks"][name], dtype)',
        "    if mask.shape != tuple(shape):",
        '        raise ValueError(f"mask {name} has the shape {mask.shape}; this minibatch needs {tuple(shape)}")',
        "    return mask",
    ]


def workspace_masks(derivation, printer) -> list:
    """The masks gradients_into and sgd_step draw before their in-place body (one array per mask and
    call: a fresh mask is new data, like a new minibatch)."""
    from derive.codegen import Assignment
    from derive.codegen_inputs import size_source
    from derive.notation import size

    network = derivation.model.network
    return [Assignment(q.batched().code(), f'_mask("{q.batched().code()}", ({size_source(derivation, size(node.layer))}, m), ws.dtype)')
            for node, q in network.data_inputs]
