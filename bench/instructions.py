"""`python -m bench.instructions balance|transfer|history|livez|hello [...]`: instructions per request.

CPU time on a shared 2-core VM moves by tens of percent within the hour; the number of
instructions a request executes does not. This runs each scenario of bench.profile (the
same seeded database, Redis and warm-up) under valgrind's callgrind with collection off,
switches collection on for N requests only (callgrind_control), and prints the user-space
instructions per request. Two runs of the same tree agree within about 0.5%, so a change
worth 2% shows. Kernel work (socket calls, PostgreSQL, Redis) is not counted: this prices
the Python the app runs, not the round trips. Needs valgrind (apt-get install valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.profile import SCENARIOS, prepared

ROOT = Path(__file__).resolve().parent.parent
_COLLECTED = re.compile(r"Collected : (\d+)")


def measure_here(name: str, requests: int) -> None:
    """Inside valgrind: prepare, then count only the timed requests."""
    with prepared(name) as (request, expected):
        control = ["callgrind_control", "--instr", "on", str(os.getpid())]
        subprocess.run(control, check=True, capture_output=True)
        statuses = [request() for _ in range(requests)]
        subprocess.run([*control[:2], "off", control[3]], check=True, capture_output=True)
    if set(statuses) != {expected}:
        raise SystemExit(f"{name}: statuses {sorted(set(statuses))}, expected {expected}")


def count(name: str, requests: int) -> int:
    """Instructions per request of one scenario, run in a valgrind child."""
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                "-m",
                "bench.instructions",
                "--inside",
                name,
                "--requests",
                str(requests),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
        )
    found = _COLLECTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"{name}: valgrind run failed\n{run.stderr[-2000:]}")
    return int(found.group(1)) // requests


BENCH_SCENARIOS = ("balance", "hello", "transfer", "livez", "history")


def run(scenarios: tuple[str, ...] = BENCH_SCENARIOS, requests: int = 200) -> dict[str, int] | None:
    """make bench's part: each scenario's instructions per request; None without valgrind."""
    if not shutil.which("valgrind"):
        return None
    return {name: count(name, requests) for name in scenarios}


def report(counts: dict[str, int] | None) -> None:
    print("\n== instructions per request (callgrind, user space; repeatable to ~0.5%) ==")
    if counts is None:
        print("valgrind is not installed (apt-get install valgrind): not measured")
        return
    for name, value in counts.items():
        print(f"{name:<10}{value:>12,}")
    if "balance" in counts and "hello" in counts:
        print(f"balance/hello: {counts['balance'] / counts['hello']:.2f} (the app's own work beside Flask's ceiling)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)}; default: {' '.join(BENCH_SCENARIOS)}")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenarios = tuple(args.scenarios) or BENCH_SCENARIOS
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.inside:
        measure_here(scenarios[0], args.requests)
        return 0
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    report(run(scenarios, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
