"""CPU the hourly ``auditagent run`` costs this laptop: user + system time of the agent
process and of every command it runs (self + children, from wait4), averaged over many
runs, against a real collector on 127.0.0.1 (SQLite) so the run fetches the signed policy,
signs, spools and sends exactly as the scheduler's run does.

Two kinds of run: one whose package-manager query is answered from the cache (its inputs
unchanged: auditagent/package_inputs.py), and one that re-runs the query (the cache entry
removed, as when apt's lists are refreshed or a package installed). The hourly average
assumes the inputs change twice a day (apt-daily's two refreshes), i.e. 2 re-queries in
24 runs. Target (issue 13 item 6): <= 100 ms.

    python bench/bench_agent_cost.py [--runs 30] [--requery-runs 3] [--no-send] [--repo DIR]

``--repo`` measures another checkout's agent (e.g. ``git worktree add --detach /tmp/ref main``)
with this venv, for before/after figures in one sitting.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cpu_of(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(CPU seconds of the process and all its children, exit code). Run from the home
    folder, so ``python -m`` imports the tree on PYTHONPATH, not the current directory's."""
    proc = subprocess.Popen(argv, env=env, cwd=env["AUDITAGENT_HOME"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_collector(work: Path, repo: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, AUDITAGENT_COLLECTOR_DB=f"sqlite:///{work / 'collector.db'}", PYTHONPATH=repo)
    collector = str(BIN / "auditagent-collector")
    subprocess.run([collector, "unit", "add", "Bench"], env=env, check=True, capture_output=True)
    token = subprocess.run([collector, "token", "create", "--unit", "Bench", "--uses", "5"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    (work / "token.txt").write_text(token)
    port = free_port()
    server = subprocess.Popen([collector, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # a loaded machine may take many seconds
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, url
        except OSError:
            time.sleep(0.05)
    server.kill()
    sys.exit("the collector did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="runs with the package-manager answer cached")
    ap.add_argument("--requery-runs", type=int, default=3, help="runs that re-run the package-manager query")
    ap.add_argument("--no-send", action="store_true", help="spool only (no collector)")
    ap.add_argument("--repo", default=str(REPO), help="the checkout whose agent and collector run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    server = None
    try:
        home = work / "home"
        home.mkdir()
        env = dict(os.environ, AUDITAGENT_HOME=str(home), PYTHONPATH=args.repo)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed agent runs from bytecode
        agent = [sys.executable, "-m", "auditagent.cli"]
        if args.no_send:
            run = agent + ["run", "--no-send"]
            # --no-send still needs an enrolment; a collector serves only the enrolment then.
        server, url = start_collector(work, args.repo)
        subprocess.run(agent + ["enroll", "--server", url, "--token-file", str(work / "token.txt")], env=env, cwd=home,
                       check=True, capture_output=True)
        if args.no_send:
            server.terminate()
            server.wait()
            server = None
        else:
            run = agent + ["run"]
        _, code = cpu_of(run, env)  # warm-up: bytecode, policy fetched, package query cached
        if code not in (0, 1):
            err = subprocess.run(run, env=env, cwd=home, capture_output=True, text=True).stderr
            sys.exit(f"run failed (exit {code}): {err}")
        cached = [cpu_of(run, env)[0] for _ in range(args.runs)]
        requery = []
        for _ in range(args.requery_runs):
            for entry in (home / "cache").glob("patches-*.json"):
                if "first-seen" not in entry.name:
                    entry.unlink()
            requery.append(cpu_of(run, env)[0])
        bare = statistics.mean(cpu_of([sys.executable, "-c", "pass"], env)[0] for _ in range(10))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    c, q = statistics.mean(cached), statistics.mean(requery) if requery else float("nan")
    print(f"auditagent {' '.join(run[3:])} from {args.repo}: CPU per run (user+sys, self+children), "
          f"python {sys.version.split()[0]}")
    print(f"  package-manager answer cached: mean {c * 1000:6.1f} ms  median {statistics.median(cached) * 1000:6.1f}"
          f"  min {min(cached) * 1000:6.1f}  ({args.runs} runs)")
    print(f"  package-manager query re-run:  mean {q * 1000:6.1f} ms  ({args.requery_runs} runs)")
    print(f"  bare interpreter start:        mean {bare * 1000:6.1f} ms")
    print(f"  hourly average, inputs change twice a day: {(22 * c + 2 * q) / 24 * 1000:6.1f} ms; target <= 100 ms")


if __name__ == "__main__":
    main()
