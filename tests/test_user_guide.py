"""Every example of docs/USER_GUIDE.md runs as written: the bash and Python blocks marked
``<!-- run -->`` run in order in one empty directory (the guide's first block generates its
data), each must exit with 0 and without a traceback, and no block is left unmarked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "USER_GUIDE.md"
FENCE = re.compile(r"(?P<mark><!-- run -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)\n```", re.S)
BLOCK_TIMEOUT_S = 600


def blocks(text: str) -> list[tuple[bool, str, str]]:
    """(marked, language, code) of every bash and Python block, in order."""
    return [(m["mark"] is not None, m["lang"], m["code"]) for m in FENCE.finditer(text)]


def test_every_block_of_the_guide_is_marked_to_run() -> None:
    found = blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(found) >= 15
    assert [code.splitlines()[0] for marked, _, code in found if not marked] == []


def test_the_block_reader_sees_marks() -> None:
    text = "<!-- run -->\n```bash\necho a\n```\n\n```python\nprint(1)\n```\n"
    assert blocks(text) == [(True, "bash", "echo a"), (False, "python", "print(1)")]


@pytest.mark.slow
def test_every_example_of_the_guide_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "COLUMNS": "120"}
    env.pop("PYTHONPATH", None)
    for number, (_, lang, code) in enumerate(blocks(GUIDE.read_text(encoding="utf-8")), start=1):
        args = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        where = f"block {number} ({lang}): {code.splitlines()[0]}"
        assert done.returncode == 0, f"{where}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{where}\n{done.stderr[-3000:]}"
    assert (tmp_path / "cmp" / "report.html").is_file() and (tmp_path / "predictions.csv").is_file()
