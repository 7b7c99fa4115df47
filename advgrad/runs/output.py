"""What a command writes, for the CLI: the record writers of ``advgrad.records.write`` (every file through a
temporary file and ``os.replace``; the provenance's command line) and whether this process writes at all
(under torchrun, process 0 alone prints and writes). The CLI reaches the library through ``advgrad.runs``
only; this module is its door to the writers. Nothing here imports torch: the CLI starts up on it."""

from __future__ import annotations

from advgrad.records.write import (
    check_writable,
    current_command,
    to_json,
    write_csv,
    write_figure,
    write_json,
    write_text,
)

__all__ = ["check_writable", "current_command", "is_main", "to_json", "write_csv", "write_figure", "write_json",
           "write_text"]


def is_main() -> bool:
    """True in the one process that writes: always without torchrun, process 0 of the group under it."""
    from advgrad.distributed import is_main as main  # torch: only once a command runs

    return main()
