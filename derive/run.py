"""The whole job, from a validated spec to the files it writes.

spec → model → derivation → code → verification → presentation → rendered files, in that order and
in memory; files are written only at the very end, and only when every check passed.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from derive import __version__
from derive.collector import collector_paused
from derive.derivation import Derivation, assemble, derive_minibatch, derive_sample
from derive.initialisation import Initialisation, derive_initialisation
from derive.errors import DeriveError, VerificationFailed
from derive.files import write_files
from derive.model import build_model
from derive.catalog.optimizers import choice_text
from derive.spec import DEFAULT_DETAIL, DEFAULT_LANGUAGE, MLPSpec, NetSpec, OptimizerChoice, default_sizes
from derive.training import Training, derive_training
from derive.parallel import Background, BackgroundFailed
from derive.verify import DirectDifferentiation, Report, minibatch_check, verify
from derive.verify_training import training_checks

if TYPE_CHECKING:
    from derive.codegen import CodePlan
    from derive.document import Document

# The presentation half (code generation, the lesson, the documents, Jinja2: about 0.1 s of CPU to
# import) is imported where it is used, not above: `generate` forks the direct differentiation before
# it, so that the child starts that much earlier and the import runs beside it

FILE_NAMES = {"md": "derivation.md", "tex": "derivation.tex", "py": "model.py", "json": "derivation.json",
              "pdf": "derivation.pdf", "html": "derivation.html", "ipynb": "derivation.ipynb"}


def require_tools(spec: MLPSpec) -> None:
    """Fail in one line, before any work, if a requested format needs something that is not installed."""
    if "pdf" in spec.formats:
        from derive.typeset import require

        require(spec.lang)
    if "html" in spec.formats:
        from derive.mathml import require

        require()
    if "ipynb" in spec.formats:
        from derive.notebook import require

        require()


@dataclass
class Outcome:
    spec: MLPSpec
    derivation: Derivation
    report: Report
    files: dict[str, bytes]  # file name → content
    seconds: float
    training: Training | None = None
    initialisation: Initialisation | None = None


def command_line(spec: MLPSpec | NetSpec) -> str:
    """The shortest `derive mlp` command that reproduces this spec (shown in every output); values
    a shell would split or expand (user-written expressions) are quoted. A network file is named."""
    from derive.model import make_spec

    if isinstance(spec, NetSpec):
        first = spec.text.splitlines()[0] if spec.text else ""
        if spec.path == "derive cnn" and first.startswith("# derive cnn"):  # the command it came from
            return first[2:] + (f" --lang {spec.lang}" if spec.lang != DEFAULT_LANGUAGE else "")
        parts = ["derive net", shlex.quote(spec.path)]
        if spec.detail != DEFAULT_DETAIL:
            parts.append(f"--detail {spec.detail}")
        if spec.lang != DEFAULT_LANGUAGE:
            parts.append(f"--lang {spec.lang}")
        return " ".join(parts)

    parts = ["derive mlp", f"--layers {spec.layers}"]
    hidden = spec.hidden_activations
    act = hidden[0] if hidden and len(set(hidden)) == 1 else ",".join(hidden) if hidden else spec.output_activation
    parts.append(f"--act {shlex.quote(act)}")
    if spec.loss != "mse":
        parts.append(f"--loss {shlex.quote(spec.loss)}")
    try:
        default = make_spec(spec.layers, act, None, spec.loss)
    except DeriveError:  # the loss does not accept the default output activation
        default = None
    if default is None or default.output_activation != spec.output_activation:
        parts.append(f"--out-act {shlex.quote(spec.output_activation)}")
    if spec.sizes != default_sizes(spec.layers):
        parts.append("--sizes " + ",".join(map(str, spec.sizes)))
    for option, value in (("--l2", spec.l2), ("--l1", spec.l1)):
        if value is not None:
            parts.append(f"{option} {value}")
    if spec.penalise_bias:
        parts.append("--penalise-bias")
    if spec.optimizer != OptimizerChoice():
        parts.append(f"--optimizer {shlex.quote(choice_text(spec.optimizer))}")
    if spec.detail != DEFAULT_DETAIL:
        parts.append(f"--detail {spec.detail}")
    if spec.lang != DEFAULT_LANGUAGE:
        parts.append(f"--lang {spec.lang}")
    return " ".join(parts)


def model_sources(
    derivation: Derivation,
    *,
    title: str,
    command: str,
    training: Training | None = None,
    initialisation: Initialisation | None = None,
    plan: CodePlan | None = None,
) -> tuple[str, str | None]:
    """model.py and model_inplace.py (None without a workspace form) for a derivation: the backward pass
    of `codegen` and the training code of `codegen_training` (the optimizer of the spec and the
    derived initial scales, derived here if not given)."""
    from derive.codegen import plan_code
    from derive.codegen_training import code_context as training_code_context
    from derive.codegen_training import plan_training
    from derive.inplace import package_sources
    from derive.present import code_context

    model = derivation.model
    training = training if training is not None else derive_training(model.spec.optimizer)
    initialisation = initialisation if initialisation is not None else derive_initialisation(model)
    context = code_context(plan if plan is not None else plan_code(derivation), title=title, command=command)
    context |= training_code_context(plan_training(model, training, initialisation))
    return package_sources("model.py.j2", "model_workspace.py.j2", context)


def model_source(derivation: Derivation, **options) -> str:
    """model.py alone (the options of `model_sources`)."""
    return model_sources(derivation, **options)[0]


@collector_paused()
def derive_in_parallel(model) -> Derivation:
    """`derivation.derive` with the minibatch half in a second process (where the platform forks), and
    the cyclic collector paused as the command line pauses it (see `derive.collector`)."""
    minibatch = Background(derive_minibatch, model)
    return assemble(model, derive_sample(model), minibatch.result())


@collector_paused()
def generate(spec: MLPSpec, *, compile_pdf: bool = True) -> Outcome:
    """Derive, verify and render everything for `spec`, in memory, with the cyclic collector paused
    (as the command line pauses it, for callers that do not go through it: the gallery, the tests).
    With `compile_pdf` False a requested PDF is left out (the gallery's freshness check compares its
    source stamp instead)."""
    start = time.perf_counter()
    require_tools(spec if compile_pdf else replace(spec, formats=tuple(f for f in spec.formats if f != "pdf")))
    model = build_model(spec)
    # the process-level speed devices live here, not in the engine: the direct differentiation of
    # the symbolic check, the minibatch half of the derivation and the minibatch check run in
    # second processes
    direct = DirectDifferentiation(model)
    if direct.chained:  # a network with windows
        minibatch = Background(derive_minibatch, model)
        training = derive_training(spec.optimizer)  # meanwhile: how parameters move and start
        initialisation = derive_initialisation(model)
        sample = derive_sample(model)
        # the chained differentiation is started after the per-sample half, not beside both
        # halves: it is not needed before `verify`, and the minibatch half, which this process
        # waits for first, then has a core to itself instead of sharing two with three processes
        # (forked warm or cold, its own CPU is the same, 0.87-0.97 s against 0.90-0.97 s). The
        # point off the kinks is searched there too, and the per-sample pass evaluated at it
        direct.start(Background, sample[0])
    else:
        # the expanded loss's differentiation needs the model only and is the longest of the three
        # processes' work (an MLP of 3 layers: about 0.4 s of CPU): it starts at once, so that it is
        # done by the time `verify` asks for it instead of being waited for there. The minibatch half
        # is forked after the per-sample half, whose memoised pieces (SymPy's caches, the entries of
        # dense and element-wise kinds, the activations' derivatives) it then inherits: 0.16 s of
        # CPU against 0.21-0.22 s forked cold (three runs each)
        direct.start(Background)
        sample = derive_sample(model)
        minibatch = Background(derive_minibatch, model)
        training = derive_training(spec.optimizer)  # meanwhile: how parameters move and start
        initialisation = derive_initialisation(model)
    from derive.codegen import plan_code
    from derive.lesson import study
    from derive.present import PICTURE_FILE
    from derive.inplace import INPLACE_FILE
    from derive.render import render, template_module

    wants_documents = bool(set(spec.formats) - {"py", "json"})
    if wants_documents:  # a convolution's proofs once, while the minibatch half is still derived
        prove_convolutions(model)
    derivation = assemble(model, sample, minibatch.result())
    batch_check = Background(minibatch_check, derivation)  # exact arithmetic, while the code is written and run
    plan = plan_code(derivation)
    command = command_line(spec)
    title = f"derive {__version__}: {spec.slug()}"
    source, inplace = model_sources(derivation, title=title, command=command, training=training,
                                    initialisation=initialisation, plan=plan)
    # the lesson's computations (the worked example, the reader's checks, the paths, the bounds:
    # about 0.12 s of CPU for an MLP of 3 layers) need the derivation and model.py (the float64 slopes
    # of its check box) only, and only the documents read them: a process of their own computes them
    # while this one checks the code
    if wants_documents:  # imported before the fork, not once in each process (see `_shared_imports`)
        _shared_imports()
    lessons = Background(study, derivation, source) if wants_documents else None
    # the training checks need no direct differentiation: run them while that child finishes
    checks_of_training = training_checks(model, training, initialisation, source)
    report = verify(derivation, source, direct, batch_check, inplace)
    report.checks += checks_of_training
    lesson = _lesson(lessons, derivation, source) if lessons is not None else None
    files: dict[str, bytes] = {}
    if "py" in spec.formats:
        files[FILE_NAMES["py"]] = source.encode()
        if inplace is not None:
            files[INPLACE_FILE] = inplace.encode()
    documents: dict[str, Document] = {}

    def doc(fmt: str) -> Document:
        if fmt not in documents:
            documents[fmt] = _document(fmt, derivation, report, plan, command, spec, training, initialisation, lesson)
        return documents[fmt]

    # the JSON in a second process while this one prints the Markdown and then the LaTeX: those two
    # share their printing (the LaTeX after the Markdown takes a third of its time alone), the JSON
    # shares less; without a JSON, the LaTeX in the second process
    wants_tex = "tex" in spec.formats or "pdf" in spec.formats
    json_side = Background(_json, derivation, report, command, training, initialisation) \
        if "json" in spec.formats and set(spec.formats) - {"py", "json"} else None
    side = Background(_tex, derivation, report, plan, command, spec, training, initialisation, lesson) \
        if wants_tex and json_side is None else None
    if "md" in spec.formats or "ipynb" in spec.formats:
        markdown = template_module("derivation.md.j2", {"doc": doc("md")})
    if "md" in spec.formats:
        files[FILE_NAMES["md"]] = str(markdown).encode()
        files[PICTURE_FILE] = doc("md").picture.svg.encode()
        for block in (b for s in doc("md").sections for b in s.blocks if b.kind == "picture"):
            files.setdefault(block.file, block.svg.encode())  # further pictures (a convolution's window)
    if wants_tex:
        tex = side.result() if side is not None else \
            _tex(derivation, report, plan, command, spec, training, initialisation, lesson)
    if "json" in spec.formats:
        files[FILE_NAMES["json"]] = json_side.result() if json_side is not None else \
            _json(derivation, report, command, training, initialisation)
    if "tex" in spec.formats:
        files[FILE_NAMES["tex"]] = tex.encode()
    if "html" in spec.formats:
        files[FILE_NAMES["html"]] = render("derivation.html.j2", {"doc": doc("html")}).encode()
    if "ipynb" in spec.formats:
        from derive.notebook import notebook

        files[FILE_NAMES["ipynb"]] = notebook(doc("md"), markdown, source, spec)
    if "pdf" in spec.formats and compile_pdf:
        from derive.typeset import compile_pdf as compile_tex

        files[FILE_NAMES["pdf"]] = compile_tex(tex, spec.lang)
    return Outcome(spec, derivation, report, files, time.perf_counter() - start, training, initialisation)


def _shared_imports() -> None:
    """The modules the lesson's process imports on its first call to `study` (its parts, and numpy.random
    for the reader's checks) and the JSON's process for the training's data: this process needs them
    too (the documents, the training checks), so they are imported once here, before those processes
    are forked, rather than in each (about 40 ms of CPU a run)."""
    import numpy.random  # noqa: F401
    from derive.lesson import cost, path_example, practice, slopes  # noqa: F401
    from derive import present_training  # noqa: F401


def _lesson(lessons: Background, derivation: Derivation, source: str):
    """The lesson from its process; if that failed, computed again here, where the error itself is
    raised (as the run raises it without a fork), not a BackgroundFailed carrying its text."""
    try:
        return lessons.result()
    except BackgroundFailed:
        from derive.lesson import study

        return study(derivation, source)


def prove_convolutions(model) -> None:
    """The three forms of each convolution's input error proved equal (remembered for the documents,
    which quote the proof). They need the network only, not the derivation: the run proves them while
    the minibatch half is derived in a second process, where this process would otherwise wait (and
    the stretch after it has the minibatch check, the direct differentiation and the code checks
    sharing two cores)."""
    from derive.convproof import conv_nodes, prove

    for node in conv_nodes(model.network):
        prove(node, model.network)


def document_builder(model):
    """The MLP's document for a chain of dense layers (the backward recursion of a general layer l and
    the four equations of backpropagation), the graph's document for any other network."""
    if model.is_chain:
        from derive.present import build_document

        return build_document
    from derive.present_graph import build_graph_document

    return build_graph_document


def detail_option(spec, model) -> dict:
    """`detail` for the MLP's document builder (a chain of dense layers, from `derive mlp` or `derive
    net`); any other network's document has one form."""
    detail = getattr(spec, "detail", None)
    return {} if detail is None or not model.is_chain else {"detail": detail}


def _document(fmt, derivation, report, plan, command, spec, training, initialisation, lesson) -> Document:
    """The document in format `fmt`, built by the network's builder at the chosen detail."""
    return document_builder(derivation.model)(derivation, report, plan, command=command, fmt=fmt, lang=spec.lang,
                                              training=(training, initialisation), lesson=lesson,
                                              **detail_option(spec, derivation.model))


def _tex(derivation, report, plan, command, spec, training, initialisation, lesson) -> str:
    """derivation.tex (also the source of the PDF)."""
    from derive.render import render

    return render("derivation.tex.j2", {"doc": _document("tex", derivation, report, plan, command, spec, training,
                                                         initialisation, lesson)})


def _json(derivation, report, command, training, initialisation) -> bytes:
    """derivation.json: the derivation's data for other programs."""
    from derive.present import json_document
    from derive.present_training import training_json

    data = json_document(derivation, report, command=command)
    data["training"] = training_json(training, initialisation)
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()


def generate_and_write(spec: MLPSpec, out: Path) -> tuple[Outcome, list[Path]]:
    """Generate, and write the files only if every check passed."""
    outcome = generate(spec)
    if not outcome.report.passed:
        failed = [c for c in outcome.report.checks if c.ran and not c.passed]
        reasons = [c.figures["error"] for c in failed if "error" in c.figures]
        why = f": {reasons[0]}" if reasons else ""
        raise VerificationFailed(
            f"verification failed ({', '.join(c.name for c in failed)}){why}; nothing was written to {out}")
    return outcome, write_files(out, outcome.files)
