"""The README's quick start, run as written: the default job, then the commands that follow it."""

import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
PPZOO = shutil.which("ppzoo")


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block):
    """Each line of a bash block without its comment, split as the shell splits it."""
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.split("#")[0].strip()]


@pytest.mark.slow
def test_the_quick_start_runs_as_written(tmp_path):
    blocks = _bash_blocks(README.read_text())
    follow_on = next(b for b in blocks if "ppzoo fit vae --out vae.nc" in b)
    assert _commands(blocks[0])[0][-2:] == ["ppzoo", "run"]  # "pip install ... && ppzoo run": the default job
    cmd = [PPZOO] if PPZOO else [sys.executable, "-m", "ppzoo.cli"]
    for args in [["ppzoo", "run"], *_commands(follow_on)]:
        assert args[0] == "ppzoo", args
        out = subprocess.run(cmd + args[1:], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, (args, out.stderr[-2000:])
        assert "Traceback" not in out.stderr
    for image in ("ppc.png", "vae.png"):
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
