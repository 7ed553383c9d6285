"""Start-up time of the `mist` commands: `mist COMMAND --help` and a usage error, each in a fresh process.

    python benchmarks/benchmark_cli_start.py [--runs 5] [--repo PATH]

`--repo` times another checkout of the project (an older commit, to compare). Prints, per command line, the
median, fastest and slowest wall seconds and whether torch was imported, with the machine and its load named.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMAND_LINES = [
    ["train", "--help"],
    ["train", "--help-all"],
    ["train", "--output-dir", "o", "--save-strategy", "bogus"],
    ["predict", "--help"],
    ["predict", "--model", "m"],
    ["evaluate", "--help"],
    ["extract-features", "--help"],
    ["extract-features", "videos", "--output-dir", "o", "--clip-dtype", "half"],
    ["demo", "--help"],
    ["demo", "--epochs", "many"],
    ["prepare-dataset", "--help"],
    ["app", "--help"],
]
# runs the command in this process, then says whether torch came with it
PROBE = (
    "import contextlib, io, sys\n"
    "from training.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
    "    try:\n"
    "        main(sys.argv[1:])\n"
    "    except SystemExit:\n"
    "        pass\n"
    "print('torch' in sys.modules)\n"
)


def time_command(repo: Path, argv: list[str], runs: int) -> tuple[list[float], bool]:
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    seconds, torch_loaded = [], False
    for _ in range(runs + 1):  # the first run warms the file cache and is not counted
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=repo, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        torch_loaded = result.stdout.strip() == "True"
    return seconds[1:], torch_loaded


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command line (default: 5)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="checkout to time")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: CPU {cpu_name()} ({os.cpu_count()} cores), load {load}; "
          f"Python {platform.python_version()}; {args.repo}")  # fmt: skip
    print(f"{'command line':<60} {'median s':>9} {'min':>6} {'max':>6}  torch")
    for argv in COMMAND_LINES:
        seconds, torch_loaded = time_command(args.repo, argv, args.runs)
        line = "mist " + " ".join(argv)
        print(f"{line:<60} {statistics.median(seconds):9.2f} {min(seconds):6.2f} {max(seconds):6.2f}  {torch_loaded}")


if __name__ == "__main__":
    main()
