"""The code of the evaluation mode of batch normalisation: running statistics.

While training, PyTorch's batch_norm keeps for every unit a running mean and a running variance,
running = (1 − momentum)·running + momentum·(statistic of the minibatch), momentum 0.1, the
variance unbiased (divided by m − 1); in evaluation mode it normalises with them instead of the
minibatch's. The generated module does the same: `init_running`, `update_running` (one training
step's update, from a forward pass), and `predict` (the evaluation-mode forward pass, dropout
passing its input on). The evaluation forms are stated, not derived: evaluation computes no
gradient.
"""

from __future__ import annotations


def running_shape(node) -> str:
    """The shape of a running statistic, as code: (units, 1) for a vector, or (channels, 1, …, 1) to
    broadcast over the positions and the samples of a convolution's output (PyTorch's BatchNorm2d)."""
    axes = len(node.in_axes[0])
    if axes == 1:
        return f"(sizes[{node.layer.number}], 1)"
    return f"(sizes[{node.layer.number}][0], {', '.join(['1'] * axes)})"


def running_nodes(network) -> list:
    # running_statistic's own first test, before its module (and normalisation's) is imported
    candidates = [node for node in network.layers if getattr(node.kind, "over_samples", False)]
    if not candidates:
        return []
    from derive.layers.runningstats import running_statistic

    return [node for node in candidates if running_statistic(node) is not None]


def helper_lines(derivation, forms: dict, printer) -> list[str]:
    """init_running, update_running and predict, when the network has running statistics."""
    network = derivation.model.network
    nodes = running_nodes(network)
    if not nodes:
        return []
    from derive.layers.runningstats import MOMENTUM, batch_statistic_code, evaluation_form, running_statistic

    batch = derivation.batch.results
    output = printer._print(network.output.batched().symbol)
    stats = [(running_statistic(node), node) for node in nodes]
    lines = [
        f"BATCHNORM_MOMENTUM = {float(MOMENTUM)!r}  # PyTorch's default",
        "",
        "",
        "def init_running(sizes, dtype=np.float64):",
        '    """The running statistics of every batch normalisation as PyTorch starts them: mean 0, variance 1."""',
        "    return {",
        *[f'        "{q.code()}": np.{"zeros" if q.kind == "running_mean" else "ones"}({running_shape(node)}, dtype),'
          for q, node in stats],
        "    }",
        "",
        "",
        "def update_running(running, params, X, momentum=BATCHNORM_MOMENTUM):",
        '    """One training step\'s update of `running` in place, as PyTorch\'s batch_norm(training=True):',
        '    running = (1 − momentum)·running + momentum·(the minibatch\'s mean, or its variance divided by',
        '    m − 1; per channel of a convolution, over the samples and the positions, divided by m·h·w − 1).',
        '    Needs m ≥ 2 samples."""',
        "    m = X.shape[-1]",
        "    if m < 2:",
        '        raise ValueError("update_running needs a minibatch of at least 2 samples (the variance divides by m - 1)")',
        "    cache = _forward(params, X)",
    ]
    for q, node in stats:
        read = printer._print(node.input(True).symbol)
        lines.append(f'    {read} = cache["{read}"]')
        lines.append(f'    running["{q.code()}"] *= 1 - momentum')
        lines.append(f'    running["{q.code()}"] += momentum * {batch_statistic_code(node, printer)}')
    params = [p.code() for node in network.layers for p in node.parameters]
    lines += [
        "",
        "",
        "def predict(params, running, X):",
        '    """The output in evaluation mode: each batch normalisation uses the running statistics, each',
        '    dropout passes its input on."""',
        "    _check_inputs(params, X)",
        f"    {', '.join(params)} = ({', '.join(f'params[{p!r}]' for p in params)})",
        *[f'    {q.code()} = running["{q.code()}"]' for q, _ in stats],
        "    A0 = X",
        "    m = X.shape[-1]",
    ]
    for node in network.layers:
        for q in node.kind.data_inputs(node):
            read = printer._print(node.input(True).symbol)
            lines.append(f'    {q.batched().code()} = np.full({read}.shape, 1 - DROPOUT["{q.batched().code()}"], {read}.dtype)')
        form = evaluation_form(node)
        value = printer._print(form if form is not None else forms[node.output])
        lines.append(f"    {printer._print(batch[node.output].matrix_lhs)} = {value}")
    lines.append(f"    return {output}")
    return lines
