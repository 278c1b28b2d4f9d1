"""`derive.run` imports the presentation half (code generation, the lesson, the documents, Jinja2)
where it is used, not at the top: `generate` forks the direct differentiation first, so that the
child starts about 0.1 s of imports earlier (issue 9's bench_cli criterion). The command line's check
of the output folder, before the run, imports no Jinja2 either (`derive.files`)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import derive.cli, derive.files, derive.run  # the command line checks the output folder (derive.files) first
print(" ".join(m for m in ("jinja2", "derive.present", "derive.render", "derive.codegen", "derive.lesson",
                           "derive.document", "derive.codegen_training", "derive.present_training")
               if m in sys.modules) or "none")
"""


def test_importing_the_run_leaves_the_presentation_half_unimported():
    done = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
    assert done.stdout.split("\n")[0] == "none"


RUN_PROBE = """
import sys
from derive.model import make_spec
from derive.run import generate
outcome = generate(make_spec(3, "sigmoid", None, "mse"), compile_pdf=False)
assert outcome.report.passed
print(" ".join(m for m in ("derive.convops", "derive.attnops", "derive.poolfusion", "derive.layers.normalise",
                           "derive.layers.runningstats") if m in sys.modules) or "none")
"""


def test_an_mlp_run_leaves_the_other_layer_kinds_modules_unimported():
    """The window operations (convops, and poolfusion, which rewrites them), attention's (attnops) and
    batch normalisation's (normalise, runningstats) are imported only by a network that has such
    layers: the code generator registers their helpers when printed code first calls one, and the
    recognisers import them once a formula can be theirs (issue 9: about 0.03 s of the MLP's run)."""
    done = subprocess.run([sys.executable, "-c", RUN_PROBE], check=True, capture_output=True, text=True)
    assert done.stdout.split("\n")[-2] == "none"
