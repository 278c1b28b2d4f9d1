"""The big picture of backpropagation as sums over paths (Nielsen, ch. 2, "Backpropagation: the big
picture"), given once the four equations are known: a change of one weight of layer 1 reaches the
loss along every path through one unit of each later layer; each edge of a path multiplies the change
by its rate; the change of the loss is the sum over the paths of the products of the rates; and the
errors of the backward pass are these sums, grouped from the loss end so that each is computed once."""

from __future__ import annotations

import sympy as sp

from derive import document as blocks


def _u(layer: int) -> str:
    return f"j_{{{layer}}}"


def _a(layer: int, unit: str) -> str:
    return f"a^{{({layer})}}_{{{unit}}}"


def _z(layer: int, unit: str) -> str:
    return f"z^{{({layer})}}_{{{unit}}}"


def _frac(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {top}}}{{\partial {bottom}}}"


def path_count(sizes: tuple[int, ...], vector_output: bool) -> tuple[str, int]:
    """How many paths a weight of layer 1 has to the loss: one unit in each later layer, and for a
    vector output activation (softmax) one more choice of the output it reaches. The formula with
    this network's sizes, and the count."""
    depth = len(sizes) - 1
    factors = [(f"n_{{{l}}}", sizes[l]) for l in range(2, depth + 1)]
    if vector_output:
        factors.append((f"n_{{{depth}}}", sizes[depth]))
    count = 1
    for _, n in factors:
        count *= n
    symbols = " ".join(f for f, _ in factors)
    numbers = r" \cdot ".join(str(n) for _, n in factors)
    return (f"{symbols} = {numbers} = {count}" if len(factors) > 1 else f"{symbols} = {count}"), count


def _softmax_rate(L: int, out: str) -> str:
    """∂a_{j'}/∂z_j of the softmax, a_{j'}([j = j'] − a_j); checked against SymPy's derivative of a
    three-output softmax, every entry (both cases of the bracket)."""
    z = sp.symbols("z1:4", real=True)
    total = sum(sp.exp(v) for v in z)
    a = [sp.exp(v) / total for v in z]
    for j in range(3):
        for jj in range(3):
            if sp.cancel(sp.diff(a[jj], z[j]) - a[jj] * ((1 if j == jj else 0) - a[j])) != 0:
                raise AssertionError("the softmax's rate along a path is not its derivative")
    return rf"{_a(L, out)} \bigl([{_u(L)} = {out}] - {_a(L, _u(L))}\bigr)"


def _path_name(units: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(u) for u in units) + ")"


def _short(value) -> str:
    """A stated value (a weight, an input, a slope of exactly 0 or 1) as stated, 0.4 and 1; any other
    to four significant figures, as the worked example prints it."""
    from derive.present_lesson import _number, _stated

    exact = isinstance(value, sp.Rational) and 1000 % value.q == 0
    return _stated(value) if exact else _number(value)


def _factors(values, number) -> str:
    return r" \cdot ".join(rf"\left({number(v)}\right)" if v < 0 else number(v) for v in values)


def example_blocks(example, sizes: tuple[int, ...], text, refs, figure: str = "") -> list:
    """The sum over paths at numbers (derive.lesson.path_example): a table of the paths from one
    weight of the worked example's network, each with its rates and their product; the parts the
    paths through one unit of layer 2 share, added up, beside that unit's error; and the sum of all
    products beside the gradient. Every number is computed; the two agreements are checked there."""
    from derive.present_lesson import _number

    # `figure`: the reference to the worked example's picture, whose orange edges are these paths
    L = len(sizes) - 1
    j1, k = example.weight
    weight = rf"W^{{(1)}}_{{{j1}{k}}}"
    out_unit = _u(L) + "'" if example.vector else _u(L)
    names = [_u(l) for l in range(2, L + 1)] + ([out_unit] if example.vector else [])
    # the column heads: the rates of the sum above, split where the paths through one unit of layer 2 meet
    tail = [_frac("C", _a(L, out_unit)),
            _frac(_a(L, out_unit), _z(L, _u(L))) if example.vector else rf"g'({_z(L, _u(L))})"]
    for l in range(L - 1, 1, -1):
        tail += [rf"W^{{({l + 1})}}_{{{_u(l + 1)} {_u(l)}}}", rf"g'({_z(l, _u(l))})"]
    head = [rf"W^{{(2)}}_{{{_u(2)} {j1}}}", rf"g'(z^{{(1)}}_{{{j1}}})", rf"a^{{(0)}}_{{{k}}}"]
    # one factor per column (review 30, defect 12), the tail's product named after them: the tails of the
    # rows through one unit of layer 2 add up to its error, shown below the table
    header = (text.math(_path_name(tuple(names))), *map(text.math, tail), text("paths.example_tail"),
              *map(text.math, head), text("paths.example_product"))
    # the lesson shows only the paths that count where a one-hot target silences the other outputs (review
    # 25, defect 9: four of eight rows were 0); `full` keeps every path
    trimmed = text.is_lesson and bool(example.silent)
    terms = example.counted if trimmed else example.terms
    if len(tail) != len(terms[0].tail) or len(head) != len(terms[0].head):
        raise AssertionError("the path table's columns do not match the factors of its paths")
    rows = tuple((text.math(_path_name(t.units)), *(text.math(_short(v)) for v in t.tail),
                  text.math(_number(sp.Mul(*t.tail))), *(text.math(_short(v)) for v in t.head),
                  text.math(_number(t.product))) for t in terms)
    shared = tuple(blocks.Row(
        rf"\delta^{{(2)}}_{{{j2}}}",
        " + ".join(rf"\left({_number(sp.Mul(*t.tail))}\right)" if sp.Mul(*t.tail) < 0 else _number(sp.Mul(*t.tail))
                   for t in terms if t.units[0] == j2) + " = " + _number(error))
        for j2, _through, error in example.shared)
    separator = "、" if text.lang == "zh" else ", "
    silent = separator.join(str(j) for j in example.silent)
    silent_rate = " = ".join(_frac("C", _a(L, str(j))) for j in example.silent) + " = 0"
    kept = [t.product for t in example.terms if t.product != 0]
    total = " + ".join(rf"\left({_number(v)}\right)" if v < 0 else _number(v) for v in kept)
    gradient = rf"\frac{{\partial C}}{{\partial {weight}}}"
    return [  # where the numbers come from, then which weight; the rounding as a note under the table (review 23, zh item 18)
        blocks.Paragraph(text("paths.example_source", raw={"example": refs.section("example")})
                         + (text.raw("language.sentence_separator") + text("paths.example_figure", raw={"figure": figure})
                            if figure else "")),
        blocks.Paragraph(text("paths.example_intro_counted", weight=weight, paths=len(example.terms), rate=silent_rate,
                              counted=len(terms), kept=separator.join(str(j) for j in sorted({t.units[-1] for t in terms})))
                         if trimmed else
                         text("paths.example_intro" + ("_vector" if example.vector else ""),
                              weight=weight, paths=len(example.terms))),
        blocks.Paragraph(text("paths.example_columns", tail=len(tail), head=len(head))),
        blocks.Table(header, rows, ("l", *"r" * (len(tail) + 1 + len(head)), "r")),
        blocks.Paragraph(text("paths.example_rounding")),
        blocks.Paragraph(text("paths.example_shared")),
        blocks.Aligned(shared),
        # zero rows named by their cause where it is one: an output the loss does not look at (review 23, defect 6)
        blocks.Paragraph(text("paths.example_total_counted", zero=len(example.terms) - len(terms),
                                   paths=len(example.terms), outputs=silent, counted=len(terms))
                         if trimmed else
                         text("paths.example_total_zero_target", zero=example.zero, paths=len(example.terms),
                              outputs=silent, rate=silent_rate)
                         if example.silent else
                         text("paths.example_total_zero" if example.zero else "paths.example_total",
                              zero=example.zero, paths=len(example.terms))),
        blocks.Aligned((blocks.Row(gradient, (total + " = " if len(kept) > 1 else "") + _number(example.gradient)),)),
    ]


def paths_blocks(sizes: tuple[int, ...], vector_output: bool, text, refs, example=None, figure: str = "") -> list:
    """The section: Nielsen's indexed product for a weight W⁽¹⁾_{j₁k} of this network's depth, the
    rate of each edge, the count of paths, the paths of the worked example's network at numbers
    (`example`, a path_example.PathExample, where there is one), and the errors as the same sum
    grouped from the loss: how backpropagation could have been discovered."""
    depth = len(sizes) - 1
    L = depth
    weight = rf"W^{{(1)}}_{{{_u(1)} k}}"
    change = rf"\Delta {weight}"
    out_unit = _u(L) + "'" if vector_output else _u(L)  # softmax: the output reached, another unit of layer L
    summed = ", ".join([_u(l) for l in range(2, L + 1)] + ([out_unit] if vector_output else []))
    # the rates from the loss back to the weight, as partial derivatives and as values
    partials = [_frac("C", _a(L, out_unit)), _frac(_a(L, out_unit), _z(L, _u(L)))]
    values = [_frac("C", _a(L, out_unit)) + " " + (_softmax_rate(L, out_unit) if vector_output
                                                   else rf"g'({_z(L, _u(L))})")]
    for l in range(L - 1, 0, -1):
        partials += [_frac(_z(l + 1, _u(l + 1)), _a(l, _u(l))), _frac(_a(l, _u(l)), _z(l, _u(l)))]
        values += [rf"W^{{({l + 1})}}_{{{_u(l + 1)} {_u(l)}}}", rf"g'({_z(l, _u(l))})"]
    partials.append(_frac(_z(1, _u(1)), weight))
    values.append(_a(0, "k"))
    total = rf"\sum_{{{summed}}}"
    # one line per layer, from the loss back, aligned after the sum (ΔC ≈ Σ stands left of the
    # alignment point), each continued line led by its operator (\cdot), so the product neither runs
    # off the page nor breaks where a reader cannot tell that it goes on
    per_layer = [partials[n:n + 2] for n in range(0, len(partials) - 1, 2)] + [partials[-1:]]
    per_layer[-1] = per_layer[-1] + [change]
    head = rf"\Delta C \approx {total}"
    nielsen = [blocks.Row(head, " ".join(per_layer[0]), relation="")]
    nielsen += [blocks.Row("", rf"{{}} \cdot {' '.join(factors)}", relation="") for factors in per_layer[1:]]
    half = (len(values) + 1) // 2
    rates = (blocks.Row(head, " ".join(values[:half]), relation=""),
             blocks.Row("", rf"{{}} \cdot {' '.join(values[half:])}\, {change}", relation=""))
    # the same sum grouped from the loss end: BP1, then BP2 once per layer, then BP4
    if vector_output:
        first = rf"\sum_{{{out_unit}}} {_frac('C', _a(L, out_unit))} {_frac(_a(L, out_unit), _z(L, _u(L)))}"
    else:
        first = rf"{_frac('C', _a(L, _u(L)))} g'({_z(L, _u(L))})"
    grouped = [blocks.Row(rf"\delta^{{({L})}}_{{{_u(L)}}}", first, "BP1")]
    for l in range(L - 1, 0, -1):
        grouped.append(blocks.Row(
            rf"\delta^{{({l})}}_{{{_u(l)}}}",
            rf"\sum_{{{_u(l + 1)}}} \delta^{{({l + 1})}}_{{{_u(l + 1)}}} W^{{({l + 1})}}_{{{_u(l + 1)} {_u(l)}}} "
            rf"g'({_z(l, _u(l))})", "BP2"))
    grouped.append(blocks.Row(r"\Delta C", rf"\delta^{{(1)}}_{{{_u(1)}}} {_a(0, 'k')}\, {change}", "BP4",
                              relation=r"\approx"))
    formula, _count = path_count(sizes, vector_output)
    return [
        blocks.Paragraph(text("paths.intro" + ("_vector" if vector_output else ""), weight=weight, out=out_unit,
                              rate=_softmax_rate(L, out_unit) if vector_output else "", z=_z(L, _u(L)),
                              a=_a(L, out_unit))),
        # the lesson's catalog says the rates in its opening paragraph and goes straight to them
        *([] if text.is_lesson else [blocks.Aligned(tuple(nielsen))]),
        # at a softmax, the crossing's rate stands on a line of its own: inline it stretched its
        # paragraph's lines (zh review 26, item 15)
        *([blocks.Paragraph(text("paths.rates_vector_lead", z=_z(L, _u(L)), a=_a(L, out_unit))),
           blocks.Equation(rf"{_frac(_a(L, out_unit), _z(L, _u(L)))} = {_softmax_rate(L, out_unit)}"),
           blocks.Paragraph(text("paths.rates_vector_tail"))] if vector_output
          else [blocks.Paragraph(text("paths.rates"))]),
        blocks.Aligned(rates),
        # with the example, the count only counts: the shared parts are shown by the table and then discussed
        blocks.Paragraph(text(("paths.count_brief" if example is not None else "paths.count")
                              + ("_vector" if vector_output else ""), count=formula, out=out_unit,
                              outputs=f"n_{{{L}}}")),  # the output layer's width, twice in a count after a softmax
        *(example_blocks(example, sizes, text, refs, figure) if example is not None else []),
        *([blocks.Paragraph(text("paths.discover")),
           blocks.Paragraph(text("paths.factor" + ("_named" if text.is_lesson else "")
                                 + ("_vector" if vector_output else "")))] if example is not None
          else [blocks.Paragraph(text("paths.grouped"))]),
        # the lesson names the equations it finds, boxed in section `method`, without a third display of
        # them (review 23, defect 2); `full` writes the grouped sum out
        *([] if text.is_lesson and example is not None else [blocks.Aligned(tuple(grouped))]),
        blocks.Paragraph(text("paths.bookkeeping", raw={"cost": refs.section("cost")})),
    ]
