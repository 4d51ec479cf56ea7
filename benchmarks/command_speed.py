"""What the `hubel` command's process costs around the work: the same command lines run through
main() (as Python's API calls it, the collector untouched) and through command() (the console
script: the collector leaves the imports' objects alone, and the interpreter's last pass at exit
skips them), in fresh processes, alternating, median (range) of the wall-clock seconds.

Run by hand:  .venv/bin/python benchmarks/command_speed.py [ROUNDS]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTRIES = {
    "main()": "import sys\nfrom hubel.cli.main import main\nif __name__ == '__main__':\n    sys.exit(main())\n",
    "command()": "from hubel.cli.main import command\nif __name__ == '__main__':\n    command()\n",
}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        scripts = {}
        for name, text in ENTRIES.items():
            scripts[name] = work / f"{name.strip('()')}.py"
            scripts[name].write_text(text)
        run = work / "run"
        subprocess.run([sys.executable, "-m", "hubel", "train", "digits", "--epochs", "1", "--out", str(work / "d")],
                       check=True, capture_output=True)  # fmt: skip
        commands = {
            "hubel train digits --epochs 3": ["train", "digits", "--epochs", "3", "--out", str(run)],
            "hubel train digits --epochs 3 --nproc 2": [*"train digits --epochs 3 --nproc 2 --out".split(), str(run)],
            "hubel evaluate RUN digits": ["evaluate", str(work / "d"), "digits"],
            "hubel summary fashion_cnn": ["summary", "fashion_cnn"],
        }
        seconds: dict[tuple[str, str], list[float]] = {(c, e): [] for c in commands for e in ENTRIES}
        for _ in range(rounds):
            for line, arguments in commands.items():
                for entry, script in scripts.items():
                    shutil.rmtree(run, ignore_errors=True)
                    start = time.perf_counter()
                    subprocess.run([sys.executable, str(script), *arguments], check=True, capture_output=True)
                    seconds[(line, entry)].append(time.perf_counter() - start)
    print(f"{rounds} rounds, seconds: median (range)\n")
    print("| command line | main() | command() | saved |")
    print("|---|---:|---:|---:|")
    for line in commands:
        before, after = seconds[(line, "main()")], seconds[(line, "command()")]
        cells = [f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})" for t in (before, after)]
        print(f"| `{line}` | {cells[0]} | {cells[1]} | {statistics.median(before) - statistics.median(after):.2f} |")


if __name__ == "__main__":
    main()
