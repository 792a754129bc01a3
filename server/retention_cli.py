"""``auditagent-collector retention``: how long reports and the daily history are kept
(server/retention.py). Run ``retention apply`` daily (a systemd timer or cron), e.g.

    auditagent-collector retention apply                        13 months of reports, 3 years of days
    auditagent-collector retention apply --reports-months 24    or as the organisation's rules say
    auditagent-collector retention show                         what would be kept, from today

Defaults come from $AUDITAGENT_RETAIN_REPORTS_MONTHS and $AUDITAGENT_RETAIN_DAYS_YEARS.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import Callable

from sqlalchemy.engine import Engine

from server import retention
from server.cli_parsers import action, command_group


def _policy(args: argparse.Namespace) -> retention.Retention:
    base = retention.Retention.from_environment()
    return retention.Retention(base.reports_months if args.reports_months is None else args.reports_months,
                               base.days_years if args.days_years is None else args.days_years)


def cmd_show(args: argparse.Namespace) -> int:
    policy = _policy(args)
    today = dt.datetime.now(dt.timezone.utc).date()
    print(f"reports: kept {policy.reports_months} months, from {policy.reports_from(today).isoformat()} "
          "(month of receipt)")
    print(f"daily history: kept {policy.days_years} years, from {policy.days_from(today).isoformat()}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    policy = _policy(args)
    engine = args.engine_for(args)
    try:
        done = retention.apply(engine, policy, dt.datetime.now(dt.timezone.utc).date())
    finally:
        engine.dispose()
    print(f"reports before {done.reports_from.isoformat()}: {len(done.dropped_partitions)} monthly partitions "
          f"dropped, {done.deleted_reports} reports and {done.deleted_blobs} facts/results blobs deleted")
    print(f"daily history before {done.days_from.isoformat()}: {done.deleted_days} device-days deleted")
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
               engine_for: Callable[[argparse.Namespace], Engine]) -> None:
    """``engine_for(args)``: the collector's migrated engine for the common --db option."""
    ret = command_group(sub, "retention", "how long reports and the daily history are kept")
    opts = argparse.ArgumentParser(add_help=False)
    opts.add_argument("--reports-months", type=int, default=None,
                      help=f"months of full signed reports to keep (default 13, ${retention.ENV_REPORTS})")
    opts.add_argument("--days-years", type=int, default=None,
                      help=f"years of daily state history to keep (default 3, ${retention.ENV_DAYS})")
    action(ret, "apply", cmd_apply, "remove what is past the limits (run daily)", [common, opts],
           engine_for=engine_for)
    action(ret, "show", cmd_show, "what the limits keep, counted from today", [opts])
