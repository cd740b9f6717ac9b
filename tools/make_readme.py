"""Render `nbs/index.ipynb` to `README.md` without Quarto.

Markdown cells are copied, with image links relative to `nbs/` rewritten relative to the repository root; code
cells are shown with their saved text outputs. Cells marked `#| hide` are
left out, `#| echo: false` hides a cell's code but keeps its outputs. Run `python tools/make_readme.py`
after changing the index notebook; `--check` exits with status 1 when `README.md` is out of date.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*)$")
_IMAGE = re.compile(r"(!\[[^\]]*\]\()(?!https?://|/)([^)]+\))")


def _directives(source: str) -> tuple[dict[str, str], str]:
    "Split leading `#| key: value` lines from the rest of a cell's source."
    found, lines = {}, source.splitlines()
    while lines and _DIRECTIVE.match(lines[0]):
        key, value = _DIRECTIVE.match(lines[0]).groups()
        found[key] = value.strip()
        lines.pop(0)
    return found, "\n".join(lines).strip("\n")


def _text(value) -> str: return "".join(value) if isinstance(value, list) else str(value)


def _outputs(cell) -> list[str]:
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream" and out.get("name") == "stdout":
            parts.append("```\n" + _text(out["text"]).rstrip("\n") + "\n```")
        elif out["output_type"] in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/markdown" in data: parts.append(_text(data["text/markdown"]).strip("\n"))
            elif "image/png" in data: continue
            elif "text/plain" in data: parts.append("```\n" + _text(data["text/plain"]).rstrip("\n") + "\n```")
    return parts


def render(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    "Return the README text for the index notebook."
    nb = json.loads(nb_path.read_text())
    blocks = []
    for cell in nb["cells"]:
        flags, body = _directives(_text(cell["source"]))
        if "hide" in flags or "export" in flags or "exporti" in flags: continue
        if cell["cell_type"] == "markdown":
            if body: blocks.append(_IMAGE.sub(r"\1nbs/\2", body))
        elif cell["cell_type"] == "code":
            if body and flags.get("echo") != "false": blocks.append("```python\n" + body + "\n```")
            blocks.extend(_outputs(cell))
    header = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py; edit the notebook, not this file. -->\n\n"
    return header + "\n\n".join(blocks) + "\n"


def main(argv: list[str]) -> int:
    text, readme = render(), ROOT / "README.md"
    if "--check" in argv:
        if readme.exists() and readme.read_text() == text: return 0
        print("README.md is out of date: run `python tools/make_readme.py`.", file=sys.stderr)
        return 1
    readme.write_text(text)
    return 0


if __name__ == "__main__": sys.exit(main(sys.argv[1:]))
