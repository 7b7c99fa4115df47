"""mkdocs hook: the committed records under results/ become part of the site, at results/...

The records (Markdown with the command that made each table, their figures and JSON files) live once, in the
repository's results/ folder; this hook adds them to the build instead of copying them into docs/, so the
site shows exactly what is committed. Model checkpoints and saved examples (.pt, .npz) are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "results"
LEFT_OUT = {".pt", ".npz"}


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(RESULTS.rglob("*")):
        if not path.is_file() or path.suffix in LEFT_OUT:
            continue
        uri = "results/" + path.relative_to(RESULTS).as_posix()
        if files.get_file_from_path(uri) is None:  # a page written in docs/results/ wins
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
