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
