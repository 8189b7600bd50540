"""Writes before and after a change: bench_foundation's throughput ratio on two commits, interleaved.

Run from the project root with the dev venv active::

    python tests/bench/compare_foundation.py --before 5575c1c [--after HEAD] [--rounds 6] [--backend both]

Each commit is checked out into a temporary git worktree (``--after`` defaults to this working tree,
uncommitted changes included) and runs its own ``tests/bench/bench_foundation.py --gib 0`` with
that tree first on ``PYTHONPATH``, before and after taking turns, ``--rounds`` times. A run's figure
is its meshbridge/mesh-client throughput ratio (the median of ``--reps``), so the machine's load at
that moment largely cancels out. Printed per backend: each round's ratios, their medians, and
after/before of the medians and of each round's pair (the spread). Issue 13 asks for after/before
within 5 %. Not part of the pytest run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RATIO = re.compile(r"median meshbridge-(\w+)\s.*ratio to baseline ([0-9.]+)")


def worktree(rev: str, parent: Path) -> Path:
    """A detached checkout of ``rev`` under ``parent``."""
    path = parent / rev.replace("/", "_")
    add = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev]
    subprocess.run(add, check=True, capture_output=True)
    return path


def ratios(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """One bench_foundation run of ``tree``: its ratio to the baseline per backend."""
    command = [sys.executable, "tests/bench/bench_foundation.py", "--gib", "0", "--n", str(args.n)]
    command += ["--reps", str(args.reps), "--backend", args.backend]
    plugin = tree / "plugins" / "meshbridge-hl7v2"
    env = {**os.environ, "PYTHONPATH": f"{tree}:{plugin}"}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    found = {backend: float(value) for backend, value in RATIO.findall(done.stdout)}
    if done.returncode or not found:
        output = done.stdout[-2000:] + done.stderr[-2000:]
        sys.exit(f"bench_foundation failed in {tree} (exit {done.returncode}):\n{output}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit before the change")
    parser.add_argument("--after", help="the commit after it (default: this working tree as it is)")
    parser.add_argument("--rounds", type=int, default=6, help="before/after pairs (default 6)")
    parser.add_argument("--n", type=int, default=200, help="messages per run (default 200)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per run (default 3)")
    parser.add_argument("--backend", default="both", choices=("both", "sqlite", "postgresql"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshbridge-compare-") as tmp:
        trees = {"before": worktree(args.before, Path(tmp))}
        trees["after"] = worktree(args.after, Path(tmp)) if args.after else ROOT
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for round_ in range(1, args.rounds + 1):
                for name in ("before", "after") if round_ % 2 else ("after", "before"):
                    runs[name].append(ratios(trees[name], args))
                    print(f"round {round_} {name:6s} " + "  ".join(f"{b} {r:.3f}" for b, r in runs[name][-1].items()))
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"\n== after ({args.after or 'working tree'}) / before ({args.before}), {args.rounds} rounds")
    for backend in runs["before"][0]:
        before = [run[backend] for run in runs["before"]]
        after = [run[backend] for run in runs["after"]]
        pairs = sorted(a / b for a, b in zip(after, before, strict=True))
        change = statistics.median(after) / statistics.median(before)
        print(
            f"{backend:10s} median ratio before {statistics.median(before):.3f}, after {statistics.median(after):.3f}: "
            f"after/before {change:.3f} ({'within' if change >= 0.95 else 'NOT within'} 5 %); "
            f"per round {pairs[0]:.2f}..{pairs[-1]:.2f}, median {statistics.median(pairs):.3f}"
        )


if __name__ == "__main__":
    main()
