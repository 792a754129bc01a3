"""The collector's CPU of rendering the dashboard's overview (the unit tree, in tree order
and worst first) and unit pages, this checkout against an older one in the same run, and
a byte-for-byte check that both write the same HTML for the same data in sv, da and en.

    eval "$(bash .ci/start-postgres.sh)"
    git worktree add --detach /tmp/base-render main && ln -sfn /work/shared /tmp/shared
    python bench/bench_render.py --db postgresql+psycopg://…/aa_pages3_new --baseline /tmp/base-render
    python bench/bench_render.py --devices 10000 --baseline /tmp/base-render   # a fleet built here (dropped after)
    python bench/bench_render.py --db URL --profile                            # where rendering spends its time

The database is only read: every connection is read-only (``default_transaction_read_only``),
so the unit page's 90-day trend is the empty one (its cache of closed days is a write; the
trend's chart is its own module, server/trend_svg.py, not measured here).
Every page is rendered at one fixed moment (``--now``, default an hour after the newest
stored report), so the two checkouts see the very same data.

Per page (direct calls of server/web.py's handlers, as the server runs them, with an admin's
request in Swedish): median wall ms and collector CPU ms of the whole handler (queries,
view model and rendering), and of rendering alone (``Web.render`` with the handler's own
data). Each checkout runs in a process of its own, alternated ``--rounds`` times.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

LANGS = ("sv", "da", "en")


def _code_root() -> Path:
    if "--code" in sys.argv[:-1]:
        return Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


REPO = _code_root()
sys.path.insert(0, str(REPO))
HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ the worker (one checkout)


def read_only_engine(url: str) -> Any:
    from sqlalchemy import event

    from server.db import make_engine

    engine = make_engine(url, pool_size=4, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET default_transaction_read_only = on")
        cur.close()
        dbapi_conn.commit()

    return engine


def make_web(engine: Any, now: dt.datetime) -> Any:
    from server.web import Web

    web = Web(None, SimpleNamespace(engine=engine), SimpleNamespace())
    web.now = lambda: now  # type: ignore[method-assign]
    web._trend_points = lambda *a, **k: []  # type: ignore[method-assign]
    return web


def request(path: str, query: str, lang: str) -> Any:
    """A GET as the server hands it to a page, the language from the reader's cookie."""
    from starlette.requests import Request

    return Request({"type": "http", "method": "GET", "path": path, "query_string": query.encode(),
                    "headers": [(b"cookie", f"aa_lang={lang}".encode())], "scheme": "https",
                    "server": ("127.0.0.1", 443)})


def pages(admin_id: int, leaf_id: int) -> list[tuple[str, str, str, str]]:
    """(name, handler, path, query)"""
    return [("overview", "overview", "/", ""), ("overview worst first", "overview", "/", "sort=readiness"),
            ("unit page administration", "unit_page", f"/units/{admin_id}", ""),
            ("unit page team", "unit_page", f"/units/{leaf_id}", "")]


def worker(args: argparse.Namespace) -> int:
    from server.web import Web

    now = dt.datetime.fromisoformat(args.now)
    engine = read_only_engine(args.db)
    web = make_web(engine, now)
    user = SimpleNamespace(username="bench-admin", role="admin", scope_path=None, lang="sv", can_export=True,
                           id=1)
    captured: dict[str, Any] = {}
    real_render = Web.render

    def capture(self: Any, ctx: Any, template: str, status: int = 200, **data: Any) -> Any:
        captured["args"] = (ctx, template, status, data)
        return real_render(self, ctx, template, status, **data)

    out = Path(args.out)
    figures: dict[str, Any] = {}
    for name, handler, path, query in pages(args.admin, args.leaf):
        def call(lang: str, name: str = name, handler: str = handler, path: str = path, query: str = query) -> Any:
            ctx = web.ctx(request(path, query, lang), user, "bench-csrf")
            fn = getattr(web, handler)
            return fn(ctx) if handler == "overview" else fn(ctx, int(path.rsplit("/", 1)[1]))

        Web.render = capture  # type: ignore[method-assign]
        try:
            for lang in LANGS:
                body = call(lang).body
                (out / f"{name.replace(' ', '-')}-{lang}.html").write_bytes(body)
            call("sv")
        finally:
            Web.render = real_render  # type: ignore[method-assign]
        ctx, template, status, data = captured["args"]

        def render_only() -> Any:
            return web.render(ctx, template, status, **data)

        if args.profile:
            profile(name, render_only, args.runs)
            continue
        figures[name] = {"page": timed(lambda: call("sv"), args.runs), "render": timed(render_only, args.runs)}
    engine.dispose()
    print("FIGURES " + json.dumps(figures))
    return 0


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


# Where rendering's time goes, by the file (or function) each profiled function lives in.
CATEGORIES = [
    ("finalize (neutralise)", ("_shown", "textsafe.py")),
    ("escape (markupsafe)", ("markupsafe",)),
    ("our filters (breakable)", ("name_breaks.py",)),
    ("Translator (t, pct, number)", ("i18n_web.py", "fill")),
    ("url building", ("urlencode", "parse.py", "lang_url", "filter_url")),
    ("macro calls (jinja runtime)", ("jinja2/runtime.py",)),
    ("jinja other (environment, utils)", ("jinja2/",)),
    ("template code", ("<template>", ".html")),
]


def profile(name: str, fn: Callable[[], Any], runs: int) -> None:
    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(runs):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    split: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{func}"
        cat = next((c for c, marks in CATEGORIES if any(m in where for m in marks)), "other: " + Path(filename).name
                   + ":" + func)
        split[cat] = split.get(cat, 0.0) + tt
    print(f"{name}: rendering alone, {total / runs * 1000:.1f} ms per page under cProfile (own time by kind)")
    for cat, tt in sorted(split.items(), key=lambda kv: -kv[1])[:16]:
        print(f"  {cat:<48} {tt / runs * 1000:7.2f} ms  {100 * tt / total:5.1f} %")
    stats.sort_stats("tottime").print_stats(14)


# ------------------------------------------------------------------ the parent (both checkouts)


def run_worker(code: Path, args: argparse.Namespace, now: str, admin: int, leaf: int, out: Path,
               profile_: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "bench_render.py"), "--worker", "--code", str(code), "--db", args.db,
           "--now", now, "--admin", str(admin), "--leaf", str(leaf), "--out", str(out), "--runs", str(args.runs)]
    if profile_:
        cmd.append("--profile")
    res = subprocess.run(["nice", "-n", "10", *cmd], capture_output=True, text=True, cwd=str(code))
    if res.returncode != 0:
        raise SystemExit(f"worker for {code} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    if profile_:
        print(res.stdout)
        return {}
    return json.loads(res.stdout.rsplit("FIGURES ", 1)[1])


def fleet_facts(url: str) -> tuple[str, int, int]:
    """The fixed moment (an hour after the newest report), the first administration (the
    largest in bench_dashboard.py's fleet) and the first team."""
    from sqlalchemy import text

    engine = read_only_engine(url)
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT max(generated_at) FROM device_state")).scalar_one()
        admin = conn.execute(text("SELECT id FROM units WHERE depth = 1 ORDER BY id LIMIT 1")).scalar_one()
        leaf = conn.execute(text("SELECT id FROM units WHERE depth = 3 ORDER BY path LIMIT 1")).scalar_one()
    engine.dispose()
    return (newest + dt.timedelta(hours=1)).isoformat(), admin, leaf


def compare(base_dir: Path, this_dir: Path) -> list[str]:
    differ = []
    for f in sorted(base_dir.iterdir()):
        mine = this_dir / f.name
        if not mine.exists() or mine.read_bytes() != f.read_bytes():
            differ.append(f.name)
    return differ


def parent(args: argparse.Namespace) -> int:
    now, admin, leaf = fleet_facts(args.db)
    if args.now:
        now = args.now
    print(f"render bench: {args.db.rsplit('/', 1)[-1]}, moment {now}, administration #{admin}, team #{leaf}, "
          f"{args.runs} calls per figure, load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    if args.profile:
        with tempfile.TemporaryDirectory() as d:
            run_worker(REPO, args, now, admin, leaf, Path(d), profile_=True)
        return 0
    codes = [("this", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: Path(tmp) / name for name, _ in codes}
        for d in dirs.values():
            d.mkdir()
        for r in range(args.rounds):
            for name, code in (codes if r % 2 else codes[::-1]):
                results[name].append(run_worker(code, args, now, admin, leaf, dirs[name]))
                print(f"  round {r + 1} {name} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
                    f"{page} {part} {v['cpu']:.1f}" for page, parts in results[name][-1].items()
                    for part, v in parts.items()) + " ms cpu", flush=True)
        if args.baseline:
            differ = compare(dirs["baseline"], dirs["this"])
            n = len(list(dirs["baseline"].iterdir()))
            digest = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(dirs["this"].iterdir()))).hexdigest()
            print(f"HTML: {n} pages (4 pages x sv, da, en) " + ("byte for byte the same as the baseline's"
                                                                 if not differ else f"DIFFER: {differ}")
                  + f" (sha256 of all {digest[:16]})")
    print(f"{'median ms (median over rounds)':<44}" + "".join(f"{n + ' ' + k:>16}" for n, _ in codes
                                                               for k in ("wall", "cpu")) +
          ("   ratio cpu" if args.baseline else ""))
    for page in results["this"][0]:
        for part in ("page", "render"):
            cells, cpus = [], {}
            for name, _ in codes:
                for k in ("wall", "cpu"):
                    v = statistics.median(res[page][part][k] for res in results[name])
                    cells.append(f"{v:16.1f}")
                    if k == "cpu":
                        cpus[name] = v
            ratio = f"   x{cpus['this'] / cpus['baseline']:.2f}" if args.baseline and cpus["baseline"] else ""
            print(f"  {page + (' (whole handler)' if part == 'page' else ' (render only)'):<42}" + "".join(cells)
                  + ratio)
    print(f"load average at the end {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    return 0 if not args.baseline or not differ else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="an existing collector database (only read)")
    ap.add_argument("--devices", type=int, help="instead of --db: build a fleet of this size (bench_dashboard.py's)"
                                               " in a scratch database on $AUDITAGENT_TEST_PG_URL, dropped after")
    ap.add_argument("--baseline", type=Path, metavar="DIR", help="another checkout to measure and compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--now", help="the moment pages are rendered at (ISO; default an hour after the newest report)")
    ap.add_argument("--profile", action="store_true", help="cProfile rendering alone, split by kind")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--admin", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--leaf", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.devices:
        sys.path.insert(0, str(HERE))
        import bench_dashboard

        from server import migrate
        from server.db import make_engine

        base = os.environ.get("AUDITAGENT_TEST_PG_URL")
        if not base:
            print("bench_render: --devices needs $AUDITAGENT_TEST_PG_URL", file=sys.stderr)
            return 2
        with bench_dashboard.fresh_database(base) as url:
            engine = make_engine(url, pool_size=2, max_overflow=2)
            migrate.upgrade(engine)
            bench_dashboard.generate(engine, n_devices=args.devices, n_units=200, days=30)
            engine.dispose()
            args.db = url
            return parent(args)
    if not args.db:
        print("bench_render: give --db URL or --devices N", file=sys.stderr)
        return 2
    return parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
