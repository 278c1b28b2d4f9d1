"""The backward pass as a loop over the layers: `backprop(params, X, Y)` of model.py.

`gradients` is unrolled, one line per formula and layer, so the recursion "for l = L−1, …, 1" of
the algorithm never appears in it as a loop. The loop is made from the same printed lines: in each
line the layer numbers are written relative to one layer, A2 → A[l - 1], W3 → W[l], and every layer
must give the same line that way (checked here: if one layer differs, as with a different activation
in some hidden layer, there is no loop to print and None is returned). The tests compare
`backprop` with `gradients` on several networks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"\b(A|Z|W|b|delta|dW|db)(\d+)\b")


@dataclass(frozen=True)
class LayerLoop:
    """The lines of `backprop`, each a (target, value) pair written with the layer variable."""

    depth: int
    forward_hidden: tuple[tuple[str, str], ...]  # Z[l], A[l] for l = 1 … L−1
    forward_output: tuple[tuple[str, str], ...]  # Z[L], A[L]
    output_error: tuple[str, str]  # delta[L] (BP1)
    gradients: tuple[tuple[str, str], ...]  # dW[l], db[l] (BP4, BP3)
    error_below: tuple[str, str] | None  # delta[l - 1] (BP2); None for one layer


def relative(code: str, layer: int, var: str) -> str:
    """`code` with every layer-numbered name written relative to `layer` as var, var ± k."""
    def name(match: re.Match) -> str:
        offset = int(match.group(2)) - layer
        index = var if offset == 0 else f"{var} + {offset}" if offset > 0 else f"{var} - {-offset}"
        return f"{match.group(1)}[{index}]"
    return NAME.sub(name, code)


def _layer(target: str) -> tuple[str, int] | None:
    found = NAME.fullmatch(target)
    return (found.group(1), int(found.group(2))) if found else None


def _same(lines: dict[int, str], shift: int, var: str) -> str | None:
    """The one line that every layer's line becomes with the layer variable, or None."""
    written = {relative(value, layer + shift, var) for layer, value in lines.items()}
    return written.pop() if len(written) == 1 else None


def layer_loop(plan) -> LayerLoop | None:
    """The loop form of `gradients`, or None when the unrolled lines are not one line per layer kind."""
    if plan.forward_sizes or plan.sizes_used or plan.dropout or plan.batchnorm:
        return None
    depth = len(plan.parameters) // 2
    if list(plan.parameters) != [name for k in range(1, depth + 1) for name in (f"W{k}", f"b{k}")]:
        return None
    by_kind: dict[str, dict[int, str]] = {}
    for line in (*plan.forward, *plan.backward):
        found = _layer(line.target)
        if found is None:
            return None
        by_kind.setdefault(found[0], {})[found[1]] = line.value
    z, a, delta = by_kind.get("Z", {}), by_kind.get("A", {}), by_kind.get("delta", {})
    depth = max(z, default=0)
    if depth < 1 or set(z) != set(range(1, depth + 1)) or set(a) != set(z) or depth not in delta:
        return None
    hidden = range(1, depth)
    z_line = _same(z, 0, "l")
    a_hidden = _same({k: a[k] for k in hidden}, 0, "l") if depth > 1 else ""
    below = _same({k + 1: delta[k] for k in hidden}, 0, "l") if depth > 1 else ""
    gradient_lines = [(f"{kind}[l]", _same(by_kind.get(kind, {}), 0, "l")) for kind in ("dW", "db")]
    if None in (z_line, a_hidden, below) or any(v is None for _, v in gradient_lines) \
            or any(set(by_kind.get(kind, {})) != set(z) for kind in ("dW", "db")):
        return None
    return LayerLoop(
        depth,
        (("Z[l]", z_line), ("A[l]", a_hidden)) if depth > 1 else (),
        (("Z[L]", relative(z[depth], depth, "L")), ("A[L]", relative(a[depth], depth, "L"))),
        ("delta[L]", relative(delta[depth], depth, "L")),
        tuple(gradient_lines),
        ("delta[l - 1]", below) if depth > 1 else None,
    )


def loop_context(plan) -> dict | None:
    """Plain data for the template: the lines of `backprop`, or None."""
    loop = layer_loop(plan)
    if loop is None:
        return None
    pairs = lambda lines: [{"target": t, "value": v} for t, v in lines]  # noqa: E731
    return {"depth": loop.depth, "forward_hidden": pairs(loop.forward_hidden),
            "forward_output": pairs(loop.forward_output), "output_error": pairs([loop.output_error])[0],
            "gradients": pairs(loop.gradients),
            "error_below": pairs([loop.error_below])[0] if loop.error_below else None}


__all__ = ["LayerLoop", "layer_loop", "loop_context", "relative"]
