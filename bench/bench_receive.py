"""The receive path's CPU now and at a baseline commit, measured in the same run.

Run:  uv run python bench/bench_receive.py [--base 90171ba] [--rounds 3]

The baseline tree is exported with ``git archive`` into a temporary folder and run from
this venv with its own ``bench/bench_client.py`` (whose ``receive_cpu`` drives that
tree's engine: raw ``message`` frame bytes in, public ``Message`` out, history in a
SQLite file). Rounds alternate baseline and current, each in a fresh process, so load
on the machine hits both alike. Each figure is the median of 5 runs of 1,000 messages.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, "bench")
from bench_client import receive_cpu
with tempfile.TemporaryDirectory() as tmp:
    ours, bare, size = receive_cpu(1000, 5, Path(tmp))
print(ours, bare, size)
"""


def measure(tree: Path) -> tuple[float, float]:
    """(engine, bare libsodium) seconds per received message, run in ``tree``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(tree / "server")]))
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET], cwd=tree, env=env, check=True, capture_output=True
    )
    ours, bare, _size = done.stdout.split()
    return float(ours), float(bare)


def main(base: str, rounds: int) -> None:
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}; base {base}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "base"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "archive", base], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        then: list[float] = []
        now: list[float] = []
        bare: list[float] = []
        for _ in range(rounds):
            then.append(measure(baseline)[0])
            current, libsodium = measure(ROOT)
            now.append(current)
            bare.append(libsodium)
            print(f"  round: base {then[-1] * 1e6:.1f} us, now {now[-1] * 1e6:.1f} us")
    base_us, now_us = statistics.median(then) * 1e6, statistics.median(now) * 1e6
    print("receive path CPU per message (median of the rounds' medians)")
    print(f"  base {base:>10} : {base_us:.1f} us")
    print(f"  now             : {now_us:.1f} us  ({now_us - base_us:+.1f} us)")
    print(f"  bare libsodium  : {statistics.median(bare) * 1e6:.1f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="90171ba", help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.base, args.rounds)
