"""A checkpoint folder read back as one dict, for comparing checkpoints in tests."""

from __future__ import annotations

from pathlib import Path

from gadbench.io import read_json
from gadbench.state.checkpoint import read_part


def read_checkpoint(folder: Path) -> dict:
    """{"step": K, part: {name: full tensor}} for every part the checkpoint holds (g, d, ref, g_opt, d_opt;
    optimizer states named `state.<param>.<key>`)."""
    info = read_json(Path(folder) / "complete.json")
    return {"step": info["step"], **{part: read_part(folder, part) for part in info["parts"]}}
