"""The section on convolution and pooling of a network's document: for every convolution its rule,
its output size, the error of its input in three forms proved equal by the engine (`convproof`),
its kernel and bias gradients, and what goes wrong in each form; for every pooling layer how its
error is routed. Plain data for the templates (`derive.document`); the prose is in the catalog."""

from __future__ import annotations

import sympy as sp

from derive import document as blocks
from derive.convproof import conv_nodes, prove
from derive.notation import Q
from derive.printing import latex


def has_windows(derivation) -> bool:
    return any(hasattr(node.kind, "window_sizes") for node in derivation.model.network.layers)


def _geometry(kind) -> str:
    times = lambda values: "\\times".join(str(v) for v in values)  # noqa: E731
    return f"\\kappa={times(kind.kernel)},\\ S={times(kind.stride)},\\ B={times(kind.padding)},\\ R={times(kind.dilation)}"


def _size_rows(node, values: dict) -> list[blocks.Row]:
    rows = []
    kind = node.kind
    for inp, out, k, s, p, d in kind.window_sizes(node):
        rhs = (rf"\left\lfloor \frac{{{latex(inp)} + 2 \cdot {p} - {d}\,({k} - 1) - 1}}{{{s}}} \right\rfloor + 1"
               rf" = \left\lfloor \frac{{{values[inp]} + {2 * p} - {d * (k - 1)} - 1}}{{{s}}} \right\rfloor + 1 = {values[out]}")
        rows.append(blocks.Row(latex(out), rhs))
    return rows


def convolution_blocks(derivation, text) -> list:
    from derive.windowsizes import size_values

    network = derivation.model.network
    values = size_values(network)
    out = [blocks.Paragraph(text("conv.intro"))]
    nodes = [n for n in conv_nodes(network) if len(n.kind.kernel) == 2]
    if nodes:
        out.append(window_picture(nodes[0], values, text))
    for n, node in enumerate(conv_nodes(network)):
        again = "_again" if n else ""  # the explanations once, for the first convolution
        l = node.layer.number
        forms = prove(node, network)
        out.append(blocks.Heading(text("conv.layer_title", layer=str(l)), detail=text.math(_geometry(node.kind))))
        rule = node.call_entry(node.out_indices("out"), None)
        out.append(blocks.Paragraph(text("conv.rule")))
        out.append(blocks.Equation(f"{latex(node.output.base[node.out_indices('out')])} = {latex(rule)}"))
        out.append(blocks.Paragraph(text("conv.size")))
        out.append(blocks.Aligned(tuple(_size_rows(node, values))))
        lhs = latex(sp.Derivative(sp.Symbol("C", real=True), node.inputs[0].base[forms.free]))
        out.append(blocks.Paragraph(text("conv.scatter" + again)))
        out.append(blocks.Equation(f"{lhs} = {latex(forms.scatter)}"))
        out.append(blocks.Paragraph(text("conv.full" + again)))
        out.append(blocks.Equation(f"{lhs} = {latex(forms.full)}"))
        out.append(blocks.Paragraph(text("conv.im2col" + again)))
        if forms.im2col is not None:
            rhs = latex(forms.im2col, matrix=True)
            left = latex(sp.Derivative(sp.Symbol("C", real=True), node.inputs[0].symbol), matrix=True)
            out.append(blocks.Equation(f"{left} = {rhs}"))
        verdict = "conv.proved" if forms.full_proved and forms.im2col_proved else "conv.not_proved"
        out.append(blocks.Paragraph(text(verdict, entries=str(forms.entries), sets=str(forms.size_sets))))
        results = derivation.sample.results
        for param in node.parameters:
            result = results.get(param.gradient)
            if result is None:
                continue
            out.append(blocks.Paragraph(text(f"conv.grad_{param.kind}" + again)))
            rows = [blocks.Row(latex(result.lhs), latex(result.rhs))]
            if result.matrix_rhs is not None:
                rows.append(blocks.Row(latex(result.matrix_lhs, matrix=True), latex(result.matrix_rhs, matrix=True)))
            out.append(blocks.Aligned(tuple(rows)))
        if not n:
            out.append(blocks.Paragraph(text("conv.wrong_intro")))
            out.append(blocks.ItemList(tuple(text(f"conv.wrong_{k}") for k in ("flip", "stride", "padding", "sums"))))
    for node in network.layers:
        name = type(node.kind).__name__
        if name in ("MaxPool2d", "AvgPool2d"):
            l = node.layer.number
            out.append(blocks.Heading(text("conv.pool_title", layer=str(l)), detail=text.math(_geometry(node.kind))))
            out.append(blocks.Paragraph(text("conv.max_route" if name == "MaxPool2d" else "conv.avg_route")))
            if name == "MaxPool2d" and any(node.kind.padding):
                out.append(blocks.Paragraph(text("conv.max_padding")))
            result = derivation.sample.results.get(Q("grad_a", node.inputs[0].layer)) or \
                derivation.sample.results.get(Q("delta", node.inputs[0].layer))
            if result is not None:
                out.append(blocks.Equation(f"{latex(result.lhs)} = {latex(result.rhs)}"))
    return out


WINDOW_FILE = "window.svg"


def window_picture(node, values: dict, text) -> blocks.Picture:
    """How one output entry of a convolution is computed from its window, and where its error goes."""
    from derive import pictures

    kind = node.kind
    spatial_in = tuple(values[a.size] for a in node.in_axes[0][1:])
    spatial_out = tuple(values[a.size] for a in node.out_axes[1:])
    words = {"input": text.raw("conv.picture_input"), "output": text.raw("conv.picture_output"),
             "legend": text.raw("conv.picture_legend")}
    layout = pictures.window_layout(spatial_in, spatial_out, kind.kernel, kind.stride, kind.padding, kind.dilation,
                                    words, node.layer.number)
    alt = text.raw("conv.picture_alt")
    return blocks.Picture(
        caption=text("conv.picture_caption", layer=str(node.layer.number)),
        alt=alt,
        file=WINDOW_FILE,
        svg=pictures.svg(layout, alt, ids="window-") if text.fmt != "tex" else None,
        tikz=pictures.tikz(layout) if text.fmt == "tex" else None,
        label="fig:window",
    )


# the symbols of this section, with the operation (or the letter) whose presence asks for the row
NOTATION = (
    ("f", "conv.symbol_f"),
    ("c,\\ c_{l}", "conv.symbol_c"),
    ("h_{l},\\ w_{l}", "conv.symbol_hw"),
    ("u,\\ v", "conv.symbol_uv"),
    ("S,\\ B,\\ R,\\ \\kappa", "conv.symbol_geometry"),
    ("\\star", "conv.symbol_star"),
)
OPERATIONS = (
    ("Col2imConv", "\\operatorname{fold}", "conv.symbol_fold"),
    ("WindowSum", "\\operatorname{winsum}", "conv.symbol_winsum"),
    ("WindowSpread", "\\operatorname{spread}", "conv.symbol_spread"),
    ("MaxPool", "\\operatorname{maxpool}", "conv.symbol_maxpool"),
    ("MaxPoolGrad", "\\operatorname{route}_{\\max}", "conv.symbol_route"),
    ("PositionMean", "\\operatorname{mean}_{\\text{pos}}", "conv.symbol_mean"),
    ("Flatten", "\\operatorname{vec}", "conv.symbol_vec"),
    ("FirstMax", "\\operatorname{argmax}_{\\text{first}}", "conv.symbol_argmax"),
)


def conv_notation(derivation, text) -> list[tuple[str, str]]:
    """Rows of the notation table for a network with windows (convolution, pooling)."""
    if not has_windows(derivation):
        return []
    rows = [(symbol, text(key)) for symbol, key in NOTATION]
    used = _operations_used(derivation)
    for name, symbol, key in OPERATIONS:
        if name in used or (name == "Col2imConv" and conv_nodes(derivation.model.network)):
            rows.append((symbol, text(key)))
    return rows


def _operations_used(derivation) -> frozenset[str]:
    """The window operations the derivation's formulas name, read from their printed forms once per
    derivation: every document of a run (Markdown, LaTeX) asks, and printing every formula is the
    cost. Only the last derivation is remembered: its documents are written one after another, and
    a process that derives many networks (the gallery) would otherwise keep every one alive."""
    global _LAST
    if _LAST is None or _LAST[0] is not derivation:
        forms = " ".join(str(r.matrix_rhs) + " " + str(r.rhs) for p in derivation.passes() for r in p.results.values())
        _LAST = (derivation, frozenset(name for name, _, _ in OPERATIONS if f"{name}(" in forms))
    return _LAST[1]


_LAST: tuple | None = None  # (derivation, the operations its formulas name)
