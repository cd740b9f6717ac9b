"""Documentation checks: every notebook renders to HTML without being executed, and every public function and class
of the package has a docstring of its own."""
import importlib
import inspect
import pkgutil
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

import koopman_nb

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))
MODULES = sorted(m.name for m in pkgutil.iter_modules(koopman_nb.__path__) if not m.name.startswith("_"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_renders_to_html(notebook):
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "<html" in body.lower()
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    title = first.source.splitlines()[0]
    assert title.startswith("# "), f"{notebook.name} starts with {title!r}, not a '# Title' line"
    assert title[2:].strip() in body, f"the title of {notebook.name} is missing from its HTML"


def undocumented(module) -> list[str]:
    "Return the public functions and classes of `module` that lack a docstring of their own."
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)): continue
        doc = obj.__doc__  # unlike inspect.getdoc, this ignores a docstring inherited from a base class
        # A dataclass without a docstring gets its signature, "Name(field: type, ...)", as __doc__.
        if not doc or not doc.strip() or doc.startswith(f"{name}("): missing.append(name)
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_public_names_have_docstrings(module_name):
    module = importlib.import_module(f"koopman_nb.{module_name}")
    assert module.__all__, f"koopman_nb.{module_name} exports nothing"
    assert undocumented(module) == [], f"koopman_nb.{module_name}: public names without a docstring"


def test_docstring_check_catches_missing_ones():
    from dataclasses import dataclass

    @dataclass
    class Plain:
        size: int

    def bare(): pass

    class Fake:
        __all__ = ["Plain", "bare", "undocumented", "MODULES"]
    Fake.Plain, Fake.bare, Fake.undocumented, Fake.MODULES = Plain, bare, undocumented, MODULES
    assert undocumented(Fake) == ["Plain", "bare"]


def test_every_module_is_checked():
    assert {"data", "targets", "preprocess", "kae", "topology", "unlearning", "reproduce"} <= set(MODULES)
    assert len(NOTEBOOKS) >= 7
