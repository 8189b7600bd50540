"""Start-up time of the command line: ``--help`` and ``status``, against ``python -c pass``.

Run from the project root with the dev venv active::

    python tests/bench/bench_startup.py [--runs 21] [--messages 200] [--importtime]

Each command runs ``--runs`` times (at least 20), interleaved with ``python -c pass`` so that a busy
machine slows both alike: the median wall time of each, and the median minus the interpreter's own
start (what meshbridge adds). Commands: ``python -m meshbridge --help``, the ``meshbridge`` console
script ``--help`` (when installed next to this Python), and ``status`` / ``status --json`` on a small
real store (``--messages`` messages, in a temporary folder). Goal: each adds at most 0.2 s; the ratio
printed is added time / goal. ``--importtime`` also prints the slowest imports of ``--help`` and of
``status`` (``python -X importtime``, cumulative microseconds).

The machine may be shared: read the medians, not single times. The exit status is non-zero only if a
command fails, not for a missed goal. Not part of the pytest run (``tests/bench`` is in ``norecursedirs``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.2  # seconds meshbridge may add to the interpreter's start for --help and status
CONFIG = """\
[store]
path = "var/mb.db"

[mesh]
url = "http://127.0.0.1:9"
shared_key = "unused"

[[mailboxes]]
id = "X26ABC1"
password = "unused"
"""


def wall(argv: list[str], cwd: Path) -> float:
    """One run's wall time in seconds; a failing command stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def small_store(folder: Path, messages: int) -> Path:
    """A config and a real store of ``messages`` messages (half out, half in, a few owing a business ack)."""
    from meshbridge.store import SQLiteStore

    config = folder / "meshbridge.toml"
    config.write_text(CONFIG)
    store = SQLiteStore(folder / "var" / "mb.db")
    try:
        for i in range(messages):
            message = store.add("out" if i % 2 else "in", "sent" if i % 2 else "delivered", route="bench")
            if i % 10 == 0:
                store.expect(message.id, "bus-ack-owed", None)
    finally:
        store.close()
    return config


def importtime(argv: list[str], cwd: Path, top: int = 12) -> list[str]:
    """The slowest imports (cumulative) of one run of ``argv`` under ``-X importtime``."""
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=cwd, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.rstrip()))
    return [f"{us:>9} us {name}" for us, name in sorted(rows, reverse=True)[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (at least 20)")
    parser.add_argument("--messages", type=int, default=200, help="messages in the store status reads")
    parser.add_argument("--importtime", action="store_true", help="also print the slowest imports")
    args = parser.parse_args()
    runs = max(args.runs, 20)
    python = sys.executable
    script = Path(python).with_name("meshbridge")

    with tempfile.TemporaryDirectory(prefix="mb-bench-startup-") as tmp:
        folder = Path(tmp)
        config = str(small_store(folder, args.messages))
        commands = {
            "python -m meshbridge --help": [python, "-m", "meshbridge", "--help"],
            "python -m meshbridge status": [python, "-m", "meshbridge", "--config", config, "status"],
            "python -m meshbridge status --json": [python, "-m", "meshbridge", "--config", config, "status", "--json"],
        }
        if script.exists():
            commands["meshbridge --help (console script)"] = [str(script), "--help"]
        baseline = [python, "-c", "pass"]
        times: dict[str, list[float]] = {name: [] for name in ["python -c pass", *commands]}
        for _ in range(runs):  # interleaved: a busy moment slows every command of the round
            times["python -c pass"].append(wall(baseline, folder))
            for name, argv in commands.items():
                times[name].append(wall(argv, folder))

        print(f"start-up, {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
        print(f"median of {runs} runs each; store of {args.messages} messages; goal: each adds <= {GOAL} s")
        base = statistics.median(times["python -c pass"])
        print(f"  {'python -c pass':<36} {base:7.3f} s")
        for name in commands:
            median = statistics.median(times[name])
            added = median - base
            verdict = "ok" if added <= GOAL else "over the goal"
            print(f"  {name:<36} {median:7.3f} s  adds {added:6.3f} s  ratio/goal {added / GOAL:5.2f}  {verdict}")
        if args.importtime:
            for name in ("python -m meshbridge --help", "python -m meshbridge status"):
                print(f"slowest imports of {name} (cumulative):")
                for row in importtime(commands[name], folder):
                    print(f"  {row}")


if __name__ == "__main__":
    main()
