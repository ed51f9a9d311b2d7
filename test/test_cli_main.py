"""The ``superpoint`` dispatcher (superpoint_training/cli/main.py): only the command named on
the line is imported; a command whose optional dependency is missing is still listed, and
running it says in one line what to install. Each case runs in a fresh interpreter, with the
dependency hidden by an import hook where one must be missing."""

from __future__ import annotations

import json
import subprocess
import sys

# Hides the top-level packages named in HIDE from imports (as if not installed).
HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HIDE:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
"""


def run_python(code: str, hide: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    prelude = f"HIDE = {list(hide)!r}\n{HIDE}" if hide else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300
    )


def test_only_the_named_command_is_imported():
    out = run_python(
        "import sys, json\n"
        "from superpoint_training.cli.main import build_parser\n"
        "build_parser(['data', 'list'])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "'superpoint_training.cli.'))))\n"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        "superpoint_training.cli.data",
        "superpoint_training.cli.main",
    ]


def test_a_command_missing_its_dependency_is_listed_and_says_what_to_install():
    code = (
        "import sys\nfrom superpoint_training.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    listing = run_python(code.replace("sys.argv[1:]", "['--help']"), hide=("torch",))
    assert listing.returncode == 0, listing.stderr
    assert "train" in listing.stdout and "extract" in listing.stdout
    train = run_python(code.replace("sys.argv[1:]", "['train', 'magicpoint']"), hide=("torch",))
    assert train.returncode == 1
    lines = train.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the Python package 'torch'" in lines[0], train.stderr
