"""Batched matrix products in the workspace's gradient-descent step: an einsum that is a stack of
matrix products becomes `np.matmul` on transposed views, and the arrays it reads and writes are kept
in memory with their batch axes first.

Attention's contractions carry batch indices: the scores S[h,j,u,s] = Σ_d Q[h,j,d,s] K[h,u,d,s] are
one matrix product per head h and sample s. NumPy's einsum cannot hand such a contraction to BLAS
(its BLAS path, tensordot, has no batch axes), and with the sample axis last in memory every matrix
of the stack is strided. Laid out head, sample, then the two matrix axes, each matrix is contiguous
(or its transpose is), and `np.matmul` over the views calls BLAS once per matrix.

The logical index order stays the derivation's (the sample last): only the memory order changes,
through `_filled(shape, dtype, axes)` in the generated Workspace, which allocates the axes in the
order `axes` and returns the transposed view. Used only in `sgd_step` (the lowering with
`exact=False`): `gradients_into` must reproduce the plain code's einsums bit for bit, and a BLAS
product sums in another order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchedProduct:
    """out.transpose(out_axes) = left.transpose(left_axes) @ right.transpose(right_axes): the
    operand whose free index comes first in the output is the left factor (`swap` when it is the
    second einsum operand)."""

    swap: bool
    left_axes: tuple[int, ...]
    right_axes: tuple[int, ...]
    out_axes: tuple[int, ...]
    batch: str  # the batch letters, in the output's order


def batched_product(subscripts: str) -> BatchedProduct | None:
    """The matmul form of a two-operand einsum that is a stack of matrix products: at least one batch
    index (in both operands and the output), exactly one summed index (in both operands only), and
    exactly one free index in each operand (in the output); None for anything else."""
    inputs, output = subscripts.split("->")
    specs = inputs.split(",")
    if len(specs) != 2 or any(len(set(s)) != len(s) for s in (*specs, output)):
        return None
    a, b = specs
    batch = [c for c in output if c in a and c in b]
    summed = [c for c in a if c in b and c not in output]
    free_a = [c for c in a if c not in b]
    free_b = [c for c in b if c not in a]
    if not batch or len(summed) != 1 or len(free_a) != 1 or len(free_b) != 1:
        return None
    if set(output) != {*batch, *free_a, *free_b}:
        return None
    swap = output.index(free_b[0]) < output.index(free_a[0])
    (left, row), (right, column) = ((b, free_b[0]), (a, free_a[0])) if swap else ((a, free_a[0]), (b, free_b[0]))
    first = [c for c in output if c in batch]
    return BatchedProduct(
        swap=swap,
        left_axes=tuple(left.index(c) for c in (*first, row, summed[0])),
        right_axes=tuple(right.index(c) for c in (*first, summed[0], column)),
        out_axes=tuple(output.index(c) for c in (*first, row, column)),
        batch="".join(first),
    )


def batch_first(spec: str, batch: str) -> tuple[int, ...]:
    """Memory order of an array with index letters `spec`: its batch axes first, then the others, each
    in the array's own order (both matrix axes stay last, so a matrix or its transpose is contiguous)."""
    return tuple([i for i, c in enumerate(spec) if c in batch] + [i for i, c in enumerate(spec) if c not in batch])


def transpose_text(axes: tuple[int, ...]) -> str:
    """`.transpose(…)` for a view with these axes, or nothing when they are in order."""
    return "" if axes == tuple(range(len(axes))) else ".transpose(" + ", ".join(str(a) for a in axes) + ")"


def scaled_by_sum(subscripts: str) -> tuple[int, ...] | None:
    """The summed axes when an einsum is A₁ ⊙ … ⊙ Σ(B ⊙ C): each A with the output's last indices (so
    that NumPy broadcasts it), B and C with the same indices, which are the output's except at the
    summed positions: the rowsum of the softmax's score error, α ⊙ rowsum(dα ⊙ α), and the layer
    norm's 1/σ ⊙ x̂ ⊙ Σ(x̂ ⊙ dx̂). Then the product, a sum with kept axes and the broadcast products
    are passes in memory order; einsum's own loop for it is several times slower. None otherwise."""
    inputs, output = subscripts.split("->")
    specs = inputs.split(",")
    if len(specs) < 3 or specs[-1] != specs[-2] or len(specs[-1]) != len(output):
        return None
    if any(not output.endswith(spec) for spec in specs[:-2]):
        return None
    b = specs[-1]
    summed = tuple(p for p, c in enumerate(b) if c not in output)
    if not summed or len(set(b)) != len(b):
        return None
    if any(b[p] != output[p] for p in range(len(b)) if p not in summed) or any(output[p] in b for p in summed):
        return None
    return summed


@dataclass(frozen=True)
class FlatProduct:
    """out.reshape(rows, −1) = A @ B of two-dimensional views of C-ordered arrays: each operand is
    `.reshape(…)` of its free and its summed axes (each group adjacent, so the reshape is a view),
    transposed when the summed group comes first (`"T"`)."""

    swap: bool  # the second einsum operand is the left factor
    left: tuple[int, bool]  # (number of leading axes that form the first reshaped axis, transposed)
    right: tuple[int, bool]
    rows: int  # the output's leading axes that come from the left factor


def flat_product(subscripts: str) -> FlatProduct | None:
    """A two-operand einsum with no batch index that is one matrix product of reshaped views (a dense
    layer over tokens and samples, W·Z with Z (features, tokens, samples), and its weight gradient
    Δ·Zᵀ summed over tokens and samples); None when an index group is not adjacent or in order."""
    inputs, output = subscripts.split("->")
    specs = inputs.split(",")
    if len(specs) != 2 or any(len(set(s)) != len(s) for s in (*specs, output)):
        return None
    a, b = specs
    if any(c in a and c in b for c in output):
        return None
    summed = [c for c in a if c in b]
    if not summed or [c for c in b if c in a] != summed:
        return None
    free_a, free_b = [c for c in a if c not in b], [c for c in b if c not in a]
    if not free_a or not free_b:
        return None
    if output == "".join(free_a + free_b):
        swap, (left, lfree), (right, rfree) = False, (a, free_a), (b, free_b)
    elif output == "".join(free_b + free_a):
        swap, (left, lfree), (right, rfree) = True, (b, free_b), (a, free_a)
    else:
        return None

    def grouped(spec: str, free: list[str], free_first: bool) -> tuple[int, bool] | None:
        if spec == "".join(free + summed):
            return (len(free), not free_first)
        if spec == "".join(summed + free):
            return (len(summed), free_first)
        return None

    lg, rg = grouped(left, lfree, True), grouped(right, rfree, False)
    if lg is None or rg is None:
        return None
    return FlatProduct(swap=swap, left=lg, right=rg, rows=len(lfree))



def matrix_view(rank: int, split: int, transposed: bool) -> str:
    """Code template ({0}: the array) of the two-dimensional view with the first `split` axes of a
    C-ordered array of this rank merged into rows and the others into columns, transposed if asked."""
    if rank == 2 and split == 1:
        text = "{0}"
    else:
        rows = " * ".join(f"{{0}}.shape[{i}]" for i in range(split))
        text = "{0}.reshape(" + rows + ", -1)"
    return text + (".T" if transposed else "")
