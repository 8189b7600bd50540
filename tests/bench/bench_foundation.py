"""Foundation benchmark: meshbridge throughput against plain mesh-client, and peak RSS for a large payload.

Run from the project root with the dev venv active::

    python tests/bench/bench_foundation.py [--n 500] [--gib 1]

Quick check: ``--n 50 --gib 0.25 --reps 1``. ``--n 0`` skips the throughput part, ``--gib 0`` the RSS part.
Routes use ``payload_type = "binary"`` (no validation); ``--payload-type auto`` times the throughput with it.
``--inline-max 0`` keeps every payload as a file (the default keeps payloads up to 64 KiB in the database).
Not part of the pytest run (``tests/bench`` is in ``norecursedirs``).

1. Throughput, against an embedded mesh-sandbox (memory store, full auth): ``--n`` small messages
   X26ABC1 -> X26ABC2, sent, collected, acknowledged and written to files, by (a) a plain ``MeshClient``
   loop and (b) ``Bridge.send`` per file then one ``Bridge.poll``. The two alternate, ``--reps`` times
   each, with the sandbox reset before every run. Goal: meshbridge/baseline median rate >= 0.8.
2. Peak RSS of the meshbridge process for a ``--gib`` payload in 100 MB chunks (the config default),
   against a sandbox with a file store. The send (``Bridge.send``) and the receive (``Bridge.poll`` into a
   folder) each run in a fresh child process that reports its own ``ru_maxrss``. Goal: < 3 x chunk size.

Temporary files (several copies of the payload) go under ``--workdir`` and are removed at the end.
The exit status is non-zero only if a check fails (messages missing, sha256 mismatch), not for a missed goal.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mesh_client import MeshClient

from meshbridge import Bridge
from meshbridge.config import DEFAULT_CHUNK_SIZE
from meshbridge.sandbox import PASSWORD, Sandbox, config_text

SENDER, RECIPIENT = "X26ABC1", "X26ABC2"
WORKFLOW = "MESHBRIDGE_BENCH"
THROUGHPUT_GOAL = 0.8  # meshbridge rate / baseline rate
RSS_GOAL = 3.0  # peak RSS / chunk size
BLOCK = 1024 * 1024
MIB = 1024 * 1024

# ``binary`` carries the bytes unvalidated, so both parts measure the transport and store path; a typed
# route would add validation, which holds a payload in memory and refuses one over its 100 MB cap.
ROUTES = """
[[routes]]
name = "out"
direction = "outbound"
from = "{sender}"
to = "{recipient}"
workflow_id = "{workflow}"
payload_type = "{payload_type}"

[[routes]]
name = "in"
direction = "inbound"
mailbox = "{recipient}"
workflow_id = "{workflow}"
payload_type = "{payload_type}"
destination = {{ folder = "inbox" }}
"""


def routes(payload_type: str = "binary") -> str:
    return ROUTES.format(sender=SENDER, recipient=RECIPIENT, workflow=WORKFLOW, payload_type=payload_type)


@dataclass
class Run:
    """One timed throughput run."""

    kind: str
    count: int
    seconds: float
    send_seconds: float
    receive_seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass
class Results:
    """Everything the summary block needs."""

    runs: list[Run] = field(default_factory=list)
    rss: dict[str, dict[str, Any]] = field(default_factory=dict)
    sha_ok: bool | None = None
    failures: list[str] = field(default_factory=list)


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


# -- throughput -------------------------------------------------------------------------------


def make_payloads(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct text payloads of ``size`` bytes (distinct so the payload store cannot share files)."""
    folder.mkdir(parents=True)
    files = []
    for i in range(n):
        path = folder / f"msg-{i:06d}.txt"
        head = f"message {i:06d} "
        path.write_bytes((head + os.urandom(size).hex())[:size].encode())
        files.append(path)
    return files


def run_baseline(sandbox: Sandbox, files: list[Path], rundir: Path) -> Run:
    """Plain mesh-client: send each file, then list, download, write to a file and acknowledge each."""
    out = rundir / "received"
    out.mkdir(parents=True)
    key = sandbox.shared_key.encode()
    started = time.perf_counter()
    with (
        MeshClient(sandbox.url, SENDER, PASSWORD, shared_key=key) as sender,
        MeshClient(sandbox.url, RECIPIENT, PASSWORD, shared_key=key) as recipient,
    ):
        for file in files:
            sender.send_message(RECIPIENT, file.read_bytes(), workflow_id=WORKFLOW, filename=file.name)
        sent = time.perf_counter()
        received = 0
        for _ in range(3):  # a page holds 500 ids; go round again in case acknowledging shifted a page
            for message_id in recipient.iterate_message_ids(batch_size=500):
                (out / message_id).write_bytes(recipient.retrieve_message(message_id).read())
                recipient.acknowledge_message(message_id)
                received += 1
            if received >= len(files):
                break
    done = time.perf_counter()
    if received != len(files):
        raise RuntimeError(f"baseline received {received} of {len(files)} messages")
    return Run("baseline", received, done - started, sent - started, done - sent)


def run_meshbridge(
    sandbox: Sandbox, files: list[Path], rundir: Path, payload_type: str = "binary", inline_max: str | None = None
) -> Run:
    """meshbridge: ``Bridge.send`` each file, then one ``Bridge.poll`` collects and delivers to a folder."""
    rundir.mkdir(parents=True)
    config = rundir / "meshbridge.toml"
    text = config_text(sandbox, routes(payload_type), mailboxes=(SENDER, RECIPIENT))
    if inline_max is not None:
        text = text.replace("[store]\n", f'[store]\ninline_max = "{inline_max}"\n', 1)
    config.write_text(text)
    started = time.perf_counter()
    with Bridge.from_file(config) as bridge:
        for file in files:
            bridge.send(file, route="out")
        sent = time.perf_counter()
        report = bridge.poll()
        delivered = bridge.store.messages(direction="in", state="delivered")
    done = time.perf_counter()
    if report.problems or len(delivered) != len(files):
        raise RuntimeError(f"meshbridge delivered {len(delivered)} of {len(files)}; problems: {report.problems[:3]}")
    return Run("meshbridge", len(delivered), done - started, sent - started, done - sent)


def throughput(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    print(
        f"\n== Throughput: {args.n} messages x {args.size} bytes {SENDER} -> {RECIPIENT}, {args.reps} reps each"
        f" (payload_type {args.payload_type}, inline_max {args.inline_max or 'default'})"
    )
    files = make_payloads(workdir / "payloads", args.n, args.size)
    runners: dict[str, Callable[[Sandbox, list[Path], Path], Run]] = {
        "baseline": run_baseline,
        "meshbridge": functools.partial(run_meshbridge, payload_type=args.payload_type, inline_max=args.inline_max),
    }
    with Sandbox() as sandbox:
        print(f"   mesh-sandbox {sandbox.url} (memory store, AUTH_MODE=full)")
        for kind, runner in runners.items():  # warm-up, untimed: first-request costs on both sides
            sandbox.reset()
            runner(sandbox, files[:20], workdir / f"warmup-{kind}")
        for rep in range(1, args.reps + 1):
            for kind, runner in runners.items():
                sandbox.reset()
                rundir = workdir / f"rep{rep}-{kind}"
                run = runner(sandbox, files, rundir)
                shutil.rmtree(rundir, ignore_errors=True)
                results.runs.append(run)
                receive = "poll" if kind == "meshbridge" else "receive"
                print(
                    f"   rep {rep} {kind:<10} {run.count} msgs {run.seconds:7.2f} s {run.rate:8.1f} msg/s"
                    f"  (send {run.send_seconds:.2f} s, {receive} {run.receive_seconds:.2f} s)"
                )
    base, mb = medians(results)
    print(f"   median baseline   {base:8.1f} msg/s")
    print(f"   median meshbridge {mb:8.1f} msg/s")
    ratio = mb / base
    print(f"   ratio meshbridge/baseline {ratio:.2f} (goal >= {THROUGHPUT_GOAL}: met {yes(ratio >= THROUGHPUT_GOAL)})")
    base_runs = [r for r in results.runs if r.kind == "baseline"]
    pairs = zip(base_runs, [r for r in results.runs if r.kind == "meshbridge"], strict=True)
    print("   ratio per repetition (the noise): " + " ".join(f"{m.rate / b.rate:.2f}" for b, m in pairs))


def medians(results: Results) -> tuple[float, float]:
    return tuple(  # type: ignore[return-value]
        statistics.median(r.rate for r in results.runs if r.kind == kind) for kind in ("baseline", "meshbridge")
    )


# -- peak RSS ---------------------------------------------------------------------------------


def maxrss_kib() -> int:
    """This process's peak RSS in KiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def child(step: str, config: Path, payload: Path | None) -> None:
    """Run in a fresh process: one meshbridge step, then print its peak RSS as JSON on the last line."""
    baseline = maxrss_kib()
    started = time.perf_counter()
    with Bridge.from_file(config) as bridge:
        if step == "send":
            assert payload is not None
            row = bridge.send(payload, route="out")
            result: dict[str, Any] = {"state": row.state, "chunks": row.chunks_total}
        else:
            report = bridge.poll()
            delivered = bridge.store.messages(direction="in", state="delivered")
            result = {
                "problems": report.problems,
                "destinations": [m.destination for m in delivered],
                "chunks": ",".join(str(m.chunks_total) for m in delivered),
            }
    seconds = time.perf_counter() - started
    print(json.dumps({"baseline_kib": baseline, "peak_kib": maxrss_kib(), "seconds": seconds, **result}))


def run_child(step: str, config: Path, payload: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--config", str(config)]
    if payload:
        command += ["--payload", str(payload)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} child exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_payload(path: Path, size: int) -> str:
    """Random (incompressible) bytes written block by block; returns the sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_rss(args: argparse.Namespace, workdir: Path, results: Results) -> None:
    size = int(args.gib * 1024**3)
    chunks = -(-size // DEFAULT_CHUNK_SIZE)
    print(f"\n== Peak RSS: {args.gib:g} GiB payload ({size:,} bytes), chunk {DEFAULT_CHUNK_SIZE:,} bytes -> {chunks}")
    free = shutil.disk_usage(workdir).free
    if free < 6 * size:  # source, sandbox store, two payload stores, delivered copy, slack
        raise RuntimeError(f"{workdir} has {free / 1024**3:.1f} GiB free; need about {6 * size / 1024**3:.1f} GiB")
    rss = workdir / "rss"
    payload = rss / "payload.bin"
    rss.mkdir()
    started = time.perf_counter()
    source_sha = write_payload(payload, size)
    print(f"   payload written in {time.perf_counter() - started:.1f} s, sha256 {source_sha[:16]}...")
    with Sandbox(store_mode="file", store_dir=rss / "sandbox-store") as sandbox:
        print(f"   mesh-sandbox {sandbox.url} (file store)")
        configs = {}
        for step in ("send", "receive"):
            (rss / step).mkdir()
            configs[step] = rss / step / "meshbridge.toml"
            configs[step].write_text(config_text(sandbox, routes(), mailboxes=(SENDER, RECIPIENT)))
        for step in ("send", "receive"):
            report = run_child(step, configs[step], payload if step == "send" else None)
            results.rss[step] = report
            peak = report["peak_kib"] * 1024
            ratio = peak / DEFAULT_CHUNK_SIZE
            print(
                f"   {step:<7} baseline {report['baseline_kib'] / 1024:6.1f} MiB  peak {peak / MIB:7.1f} MiB"
                f"  = {ratio:.2f} x chunk (goal < {RSS_GOAL:g}: met {yes(ratio < RSS_GOAL)})"
                f"  {report['seconds']:.1f} s, {size / MIB / report['seconds']:.0f} MiB/s, chunks {report['chunks']}"
            )
            if step == "send" and report["state"] != "sent":
                results.failures.append(f"large send ended in state {report['state']}")
        destinations = results.rss["receive"]["destinations"]
        problems = results.rss["receive"]["problems"]
        if problems or len(destinations) != 1:
            results.failures.append(f"large receive delivered {len(destinations)} files; problems: {problems}")
            results.sha_ok = False
        else:
            results.sha_ok = sha256_of(Path(destinations[0])) == source_sha
            print(f"   sha256 of the delivered file equals the source: {yes(results.sha_ok)}")
            if not results.sha_ok:
                results.failures.append("delivered large payload differs from the source")


# -- main -------------------------------------------------------------------------------------


def summary(args: argparse.Namespace, results: Results, seconds: float) -> str:
    lines = [
        f"meshbridge foundation bench, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"mesh-client {version('mesh-client')}, mesh-sandbox {version('mesh-sandbox')}",
    ]
    if {r.kind for r in results.runs} == {"baseline", "meshbridge"}:
        base, mb = medians(results)
        lines.append(
            f"throughput ({args.n} msgs x {args.size} B {args.payload_type}, "
            f"inline_max {args.inline_max or 'default'}, {args.reps} reps each, median): "
            f"baseline mesh-client {base:.1f} msg/s, meshbridge {mb:.1f} msg/s, "
            f"ratio {mb / base:.2f} (goal >= {THROUGHPUT_GOAL}: {yes(mb / base >= THROUGHPUT_GOAL)})"
        )
    for step, report in results.rss.items():
        peak = report["peak_kib"] * 1024
        lines.append(
            f"peak RSS {step} {args.gib:g} GiB in {DEFAULT_CHUNK_SIZE // 10**6} MB chunks: {peak / MIB:.1f} MiB "
            f"= {peak / DEFAULT_CHUNK_SIZE:.2f} x chunk (child baseline {report['baseline_kib'] / 1024:.1f} MiB; "
            f"goal < {RSS_GOAL:g} x chunk: {yes(peak < RSS_GOAL * DEFAULT_CHUNK_SIZE)})"
        )
    if results.sha_ok is not None:
        lines.append(f"large payload sha256 round trip: {'ok' if results.sha_ok else 'MISMATCH'}")
    lines += [f"FAILED: {failure}" for failure in results.failures]
    lines.append(f"bench wall time {seconds:.0f} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=500, help="messages per throughput run (0 skips; default 500)")
    parser.add_argument("--size", type=int, default=200, help="bytes per small message (default 200)")
    parser.add_argument(
        "--payload-type", default="binary", help="payload_type of the throughput routes (default binary: unvalidated)"
    )
    parser.add_argument(
        "--inline-max", help="[store] inline_max of the meshbridge runs (default: the config default; 0: all files)"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each throughput run (default 3)")
    parser.add_argument("--gib", type=float, default=1.0, help="large payload size in GiB (0 skips; default 1)")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)")
    parser.add_argument("--child", choices=("send", "receive"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.config, args.payload)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the finally blocks clean up
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="meshbridge-bench-", dir=args.workdir))
    print(f"meshbridge foundation bench: {os.cpu_count()} cores; work dir {workdir}")
    results = Results()
    try:
        if args.n > 0:
            throughput(args, workdir, results)
        if args.gib > 0:
            peak_rss(args, workdir, results)
    except BaseException as exc:  # also Ctrl-C and SIGTERM: say so in the summary, then clean up
        results.failures.append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print("\n==== summary ====")
        print(summary(args, results, time.perf_counter() - started))
        print("=================")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
