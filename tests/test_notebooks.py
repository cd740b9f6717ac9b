"""Execute every notebook in `nbs/` the way `nbdev-test` does, one pytest test per notebook.

Cells flagged `#| slow` (full-size runs) are skipped and `IN_TEST` is set, so each notebook runs at small size.
Each notebook runs in its own Python process, as in `nbdev-test`.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))
RUNNER = """
import sys
from nbdev.test import test_nb
ok, seconds = test_nb(sys.argv[1], skip_flags=["slow", "notest"], basepath=sys.argv[2])
print(f"{'passed' if ok else 'failed'} in {seconds:.1f} s")
sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(notebook):
    res = subprocess.run([sys.executable, "-c", RUNNER, str(notebook), str(ROOT)], capture_output=True, text=True,
                         cwd=notebook.parent)
    assert res.returncode == 0, f"{notebook.name} failed:\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"


def test_notebooks_found():
    assert (ROOT / "nbs" / "00_data.ipynb") in NOTEBOOKS
