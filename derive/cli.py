"""The command line: Click only. Validation and work happen in the modules it calls.

Errors are one line (`derive: error: …`) with exit status 2 for bad input and 1 for a failed
verification; nothing is written in either case.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from derive import __version__
from derive.collector import collector_paused
from derive.errors import DeriveError, VerificationFailed
from derive.spec import DEFAULT_FORMATS, FORMATS, LANGUAGES, MAX_LAYERS


class OneLineErrors(click.Group):
    """A group whose usage errors print as one line instead of Click's usage block."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("derive: aborted", err=True)
            sys.exit(1)
        except click.ClickException as error:
            click.echo(f"derive: error: {_one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        if isinstance(result, int) and result != 0:
            sys.exit(result)
        return result


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _shown(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _fail(error: DeriveError) -> None:
    code = 1 if isinstance(error, VerificationFailed) else 2
    click.echo(f"derive: error: {error}", err=True)
    sys.exit(code)


def run() -> None:
    """The console entry point (`derive`, `python -m derive`): `main`, then a prompt exit.

    A run leaves hundreds of thousands of SymPy objects whose teardown at interpreter exit takes
    about 0.12 s (a tenth of a run) and does nothing the operating system does not do anyway. By
    the time `main` returns every file has been written, closed and renamed into place and every
    child process collected, so the streams are flushed and the process ends with `os._exit` and
    click's exit code. Errors other than an exit keep Python's usual handling (a traceback).
    """
    try:
        main(prog_name="derive")
        code = 0
    except SystemExit as stop:
        code = stop.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    if "multiprocessing" in sys.modules:  # a child left by an error ends with its parent, as at a normal exit
        for child in sys.modules["multiprocessing"].active_children():
            child.terminate()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader went away or the stream is closed: nothing to keep
        code = code or 1
    os._exit(code)


@click.group(cls=OneLineErrors, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="derive", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Derive the formulas of neural networks with SymPy, verify them, and write them as
    Markdown, LaTeX, NumPy code and JSON (and on request as PDF, a web page and a notebook,
    in English or Chinese)."""
    if ctx.invoked_subcommand is None:  # bare `derive`: the help, on standard output, as --help does
        click.echo(ctx.get_help())


@main.command()
@click.option("--layers", "layers", required=True, metavar="L",
              help=f"Number of weight layers, 1 to {MAX_LAYERS} (3 means two hidden layers and an output layer).")
@click.option("--act", "act", required=True, metavar="ACT",
              help="Hidden activation: a catalog name (see `derive list`; parameters as name:value, e.g. "
                   "leaky_relu:0.1) or an expression in z such as 'z*tanh(z)'. One for all hidden layers, or one "
                   "per hidden layer separated by commas.")
@click.option("--out-act", "out_act", default=None, metavar="ACT",
              help="Output activation: a catalog name (including softmax and log_softmax) or an expression in z. "
                   "Default: softmax for ce and kl, sigmoid for bce, log_softmax for nll, otherwise the --act "
                   "activation.")
@click.option("--loss", "loss", default="mse", show_default=True, metavar="LOSS",
              help="Loss per output unit, summed over units: a catalog name (mse, ce, bce, mae, huber:δ, nll, kl; "
                   "see `derive list`) or an expression in a and y such as '(a-y)**4/4'. The cost of a minibatch "
                   "is the mean over its samples.")
@click.option("--l2", "l2", default=None, metavar="λ",
              help="Add the penalty (λ/2)·Σ W² to the loss (weight decay); counted once per minibatch.")
@click.option("--l1", "l1", default=None, metavar="λ", help="Add the penalty λ·Σ |W| to the loss.")
@click.option("--penalise-bias", "penalise_bias", is_flag=True, help="Apply --l2/--l1 to the biases too.")
@click.option("--sizes", "sizes", default=None, metavar="n0,n1,…,nL",
              help="Units per layer for the generated code and its checks (default: 4, hidden layers 5, output 3).")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT…]",
              help=f"Files to write, any of {', '.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)}). pdf needs "
                   "TeX Live, ipynb the notebook extra (pip install 'derive[notebook]').")
@click.option("--lang", "lang", default=None, metavar="LANG",
              help=f"Language of the documents: {', '.join(LANGUAGES)} (default: en). Formulas are the same in every "
                   "language.")
@click.option("--detail", "detail", default=None, metavar="LEVEL",
              help="How much the documents print: lesson (default; the derivation a student reads, with one short "
                   "training section and the certificate), full (every section and every intermediate step, "
                   "including the whole initialisation analysis) or summary (for an engineer: the network, the "
                   "four equations boxed, the algorithm beside its code, the certificate). The checks are the "
                   "same for every level.")
@click.option("--optimizer", "optimizer", default=None, metavar="NAME[:key=value,…]",
              help="Optimizer of the generated update() and train(), with torch.optim's definitions, names and "
                   "defaults (but lr 0.1 for sgd, 0.01 for momentum and nesterov, where torch's 0.001 is slow): "
                   "sgd (default), momentum, nesterov, adagrad, rmsprop, adam, adamw; hyper-parameters "
                   "after a colon, e.g. adam:lr=0.01,beta2=0.99 or 'adam:betas=(0.9,0.99)'.")
@click.option("--out", "out", default=None, metavar="DIR",
              help="Output folder (default: outputs/<architecture>-<choices>/).")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--print-network", "print_network", is_flag=True,
              help="Print this network as a network file for `derive net` (to start a new one from) and stop.")
def mlp(layers, act, out_act, loss, l2, l1, penalise_bias, sizes, formats, lang, detail, optimizer, out, quiet,
        print_network) -> None:
    """Derive backpropagation for a multilayer perceptron and write the derivation and its code."""
    if print_network:
        _print_network(layers, act, out_act, loss, l2, l1, penalise_bias, sizes, optimizer)
        return
    with collector_paused():  # restored afterwards, for callers that run the command in process (tests)
        _mlp(layers, act, out_act, loss, l2, l1, penalise_bias, sizes, formats, lang, optimizer, out, quiet, detail)


def _print_network(layers, act, out_act, loss, l2, l1, penalise_bias, sizes, optimizer) -> None:
    from derive.model import make_spec
    from derive.netfile import network_text

    try:
        spec = make_spec(layers, act, out_act, loss, sizes, None, optimizer=optimizer, l2=l2, l1=l1,
                         penalise_bias=penalise_bias)
    except DeriveError as error:
        _fail(error)
        return
    click.echo(network_text(spec), nl=False)


def _mlp(layers, act, out_act, loss, l2, l1, penalise_bias, sizes, formats, lang, optimizer, out, quiet,
         detail=None) -> None:
    from derive.model import make_spec

    try:
        spec = make_spec(layers, act, out_act, loss, sizes, formats, lang=lang, optimizer=optimizer,
                         l2=l2, l1=l1, penalise_bias=penalise_bias, detail=detail)
        if out is not None and not out.strip():  # Path("") would be the current folder
            raise DeriveError(f"invalid value for --out: {out!r} is empty; give a folder, e.g. --out results "
                              "(or omit --out for outputs/<architecture>-<choices>/)")
    except DeriveError as error:
        _fail(error)
        return
    _generate(spec, Path(out) if out is not None else Path("outputs") / spec.slug(), quiet)


def _generate(spec, folder: Path, quiet: bool, job=None, verdict=None) -> None:
    """Check that `folder` can be written (before the work), derive, verify and write, and report as
    every command does: the files written and the verdict, or one line and a non-zero exit. `job`
    and `verdict` are the generate-and-write and the verdict of a command with its own pipeline
    (`derive rnn`); by default those of `derive.run`."""
    from derive.files import check_writable
    from derive.run import generate_and_write

    generate_and_write = job or generate_and_write
    verdict = verdict or (lambda outcome: _verdict(outcome.report))
    try:
        try:
            check_writable(folder)
        except OSError as error:
            raise DeriveError(f"invalid value for --out: {_shown(str(folder))!r} cannot be written "
                              f"({error.strerror or error}); give a writable folder")
        outcome, written = generate_and_write(spec, folder)
    except DeriveError as error:
        _fail(error)
        return
    except OSError as error:
        _fail(DeriveError(f"could not write to {_shown(str(folder))!r}: {error.strerror or error}"))
        return
    if quiet:
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(verdict(outcome) + f" ({outcome.seconds:.2f} s)")


def _verdict(report) -> str:
    parts = []
    symbolic = report.check("symbolic")
    if symbolic.ran:
        how = "exactly" if symbolic.figures["exact"] else f"to {symbolic.figures['digits']} digits"
        chained = " (local derivatives chained)" if symbolic.figures.get("method") == "chained" else ""
        parts.append(f"{symbolic.figures['partials']} partial derivatives match direct differentiation{chained} {how}")
    else:
        parts.append("direct differentiation skipped (depth > 4)")
    f = report.check("derivatives").figures
    if f.get("method") == "directional":
        parts.append(f"{f['directions']} directional derivatives of model.py's gradients ({f['partials']} entries) "
                     f"match complex-step ones (relative difference < {f['largest_error']}; required {f['tolerance']})")
    else:
        parts.append(f"{f['partials']} in model.py match complex-step derivatives "
                     f"(relative difference < {f['largest_error']}; required {f['tolerance']})")
    workspace = next((c for c in report.checks if c.name == "workspace" and c.ran), None)
    if workspace is not None:
        parts.append("workspace form bit-identical")
    if not report.check("stability").ran:
        parts.append("stability check not applicable (the exact values exceed float64)")
    parts.append(f"{report.check('recognition').figures['formulas']} matrix forms checked")
    if any(c.name == "optimizer_code" for c in report.checks):
        f = report.check("optimizer_code").figures
        parts.append(f"{f['optimizer']} update equals its equations over {f['steps']} steps; initial weights and train() checked")
    return "verification passed: " + "; ".join(parts)


@main.command()
@click.option("--input", "input_shape", default="1x8x8", show_default=True, metavar="CxHxW",
              help="Input channels × rows × columns (or CxW for a signal).")
@click.option("--layers", "layers", default=None, metavar="STAGES",
              help="Stages separated by commas: 'conv F kK [sS] [pP] [dD] [ACT]', 'conv1d …', 'maxpool K [sS] [pP] [dD]', "
                   "'avgpool K [sS] [pP]', 'gap', 'flatten', 'dense N [ACT]'. k3x2 gives rows x columns. Default: "
                   "'conv 4 k3 p1 relu, maxpool 2, conv 8 k3 p1 relu, maxpool 2, flatten, dense 10 softmax'.")
@click.option("--loss", "loss", default="cross_entropy", show_default=True, metavar="LOSS",
              help="A registered loss or an expression in a and y.")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT…]",
              help=f"Files to write, any of {', '.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)}).")
@click.option("--lang", "lang", default=None, metavar="LANG",
              help=f"Language of the documents: {', '.join(LANGUAGES)} (default: en).")
@click.option("--out", "out", default=None, metavar="DIR", type=click.Path(path_type=Path),
              help="Output folder (default: outputs/net-cnn/).")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
@click.option("--print-network", "print_network", is_flag=True,
              help="Print the equivalent network file for `derive net` and stop.")
def cnn(input_shape, layers, loss, formats, lang, out, quiet, print_network) -> None:
    """Derive backpropagation for a convolutional network: convolutions (stride, zero padding,
    dilation), max and average pooling, flatten and dense layers, e.g.

    derive cnn --input 1x28x28 --layers "conv 6 k5 p2 relu, maxpool 2, conv 16 k5 relu, maxpool 2,
    flatten, dense 120 relu, dense 10 softmax"

    Output sizes are checked before any work; the network is the same graph `derive net` builds from
    the file --print-network prints."""
    with collector_paused():
        _cnn(input_shape, layers, loss, formats, lang, out, quiet, print_network)


def _cnn(input_shape, layers, loss, formats, lang, out, quiet, print_network) -> None:
    import tomllib

    from derive.cnn import DEFAULT_LAYERS, network_text
    from derive.model import _network_model
    from derive.netfile import parse_network
    from derive.spec import parse_formats, parse_lang

    layers = DEFAULT_LAYERS if layers is None else layers
    command = f"derive cnn --input {input_shape} --layers {_quoted(layers)}" + (
        f" --loss {_quoted(loss)}" if loss != "cross_entropy" else "")
    try:
        text = network_text(input_shape, layers, loss, command)
        spec = parse_network(tomllib.loads(text), "derive cnn", text=text, formats=parse_formats(formats),
                             lang=parse_lang(lang))
        _network_model(spec)
    except DeriveError as error:
        _fail(error)
        return
    if print_network:
        click.echo(text, nl=False)
        return
    _generate(spec, out if out is not None else Path("outputs") / "net-cnn", quiet)


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


@main.command()
@click.option("--cell", "cell", default="rnn", show_default=True, metavar="CELL",
              help="The recurrent cell: rnn (Elman, PyTorch's nn.RNN), lstm (nn.LSTM) or gru (nn.GRU).")
@click.option("--input", "inputs", default="3", show_default=True, metavar="N", help="Numbers per step of the input sequence.")
@click.option("--hidden", "hidden", default="4", show_default=True, metavar="H", help="Hidden units of each recurrent layer.")
@click.option("--layers", "layers", default="1", show_default=True, metavar="L", help="Stacked recurrent layers, 1 to 3.")
@click.option("--steps", "steps", default="5", show_default=True, metavar="T",
              help="Sequence length of the checks and the demonstration (the derivation holds for any length).")
@click.option("--output", "output", default="last", show_default=True, metavar="MODE",
              help="last: the head reads the last step and the loss is taken there; all: a head at every step and "
                   "the loss summed over the steps; mean: the same, the loss averaged over the steps.")
@click.option("--units", "units", default="2", show_default=True, metavar="K", help="Units of the dense head.")
@click.option("--act", "act", default="tanh", show_default=True, metavar="ACT",
              help="Activation of the Elman cell: tanh or relu (the LSTM and the GRU have their own: tanh only).")
@click.option("--out-act", "out_act", default=None, metavar="ACT",
              help="Activation of the head, element-wise (default: sigmoid for bce, otherwise identity).")
@click.option("--loss", "loss", default="mse", show_default=True, metavar="LOSS",
              help="Loss per output entry: mse, mae, huber:δ, bce or an expression in a and y.")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT…]",
              help="Files to write, any of md, tex, py, json, pdf, html (default: md,tex,py,json). pdf needs "
                   "TeX Live.")
@click.option("--lang", "lang", default=None, metavar="LANG",
              help=f"Language of the documents: {', '.join(LANGUAGES)} (default: en).")
@click.option("--optimizer", "optimizer", default=None, metavar="NAME[:key=value,…]",
              help="Optimizer of the generated update() and train(), as for `derive mlp`: sgd (default), momentum, "
                   "nesterov, adagrad, rmsprop, adam, adamw, with torch.optim's definitions, names and defaults "
                   "(but lr 0.1 for sgd, 0.01 for momentum and nesterov); hyper-parameters after a colon, e.g. "
                   "adam:lr=0.01.")
@click.option("--out", "out", default=None, metavar="DIR", type=click.Path(path_type=Path),
              help="Output folder (default: outputs/rnn-<choices>/).")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
def rnn(cell, inputs, hidden, layers, steps, output, units, act, out_act, loss, formats, lang, optimizer, out,
        quiet) -> None:
    """Derive backpropagation through time for a recurrent network (PyTorch's Elman, LSTM or GRU
    cell, stacked layers, a dense head at the last step or at every step), at a symbolic step t,
    and write the derivation and NumPy code with a forward and a backward loop over the steps, e.g.

    derive rnn --cell lstm --input 3 --hidden 8 --layers 2 --output all --loss mse"""
    with collector_paused():
        _rnn(cell, inputs, hidden, layers, steps, output, units, act, out_act, loss, formats, lang, optimizer, out,
             quiet)


def _rnn(cell, inputs, hidden, layers, steps, output, units, act, out_act, loss, formats, lang, optimizer, out,
         quiet) -> None:
    from derive.rnn import make_rnn_spec
    from derive.rnn_run import generate_and_write, verdict

    try:
        spec = make_rnn_spec(cell, inputs, hidden, layers, steps, output, units, act, out_act, loss, formats, lang,
                             optimizer)
    except DeriveError as error:
        _fail(error)
        return
    _generate(spec, out if out is not None else Path("outputs") / spec.slug(), quiet, generate_and_write, verdict)


@main.command(name="list")
def list_catalog() -> None:
    """Print the catalog: every activation and loss with its formula, its derivative as SymPy
    computes it, and its parameters."""
    from derive.catalog_list import catalog_text

    click.echo(catalog_text())


@main.command()
@click.argument("file", metavar="FILE.toml")
@click.option("--format", "formats", default=None, metavar="FMT[,FMT…]",
              help=f"Files to write, any of {', '.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)}).")
@click.option("--lang", "lang", default=None, metavar="LANG",
              help=f"Language of the documents: {', '.join(LANGUAGES)} (default: en).")
@click.option("--detail", "detail", default=None, metavar="LEVEL",
              help="How much the documents print, for a chain of dense layers: lesson (default), full or summary, "
                   "as for `derive mlp`. Any other network has one document, the lesson.")
@click.option("--out", "out", default=None, metavar="DIR", type=click.Path(path_type=Path),
              help="Output folder (default: outputs/net-<file name>/).")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
def net(file, formats, lang, detail, out, quiet) -> None:
    """Derive backpropagation for the network described in FILE.toml (layers in order, each a
    registered kind with its options; skip connections by name; loss, optimizer, penalties; see
    examples/*.toml and `derive mlp … --print-network`). Recurrent layers (kind rnn, lstm, gru)
    take the shapes of `derive rnn`: up to three of one kind and size, then a dense head."""
    with collector_paused():
        _net(file, formats, lang, out, quiet, detail)


def _net(file, formats, lang, out, quiet, detail=None) -> None:
    from derive.model import make_net_spec

    try:
        spec = make_net_spec(file, formats, lang=lang, detail=detail)
    except DeriveError as error:
        _fail(error)
        return
    folder = out if out is not None else Path("outputs") / spec.slug()
    from derive.rnn import RNNSpec

    if isinstance(spec, RNNSpec):  # recurrent layers: the pipeline of `derive rnn`
        from derive.rnn_run import generate_and_write, verdict

        _generate(spec, folder, quiet, generate_and_write, verdict)
        return
    _generate(spec, folder, quiet)
