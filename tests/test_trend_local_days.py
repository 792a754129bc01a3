"""Trend days are the organisation's local days (``serve --timezone``, default
Europe/Stockholm), on SQLite and PostgreSQL: a report is filed under its local day at
ingest, a day ends at local midnight (23 h and 25 h on the DST change days), the cache of
closed days is kept per zone, and today's point is still exactly the tiles."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from auditagent import report as wire
from readiness_fleet import results
from server import readiness as rd
from server.db import device_days, devices, unit_day_ready
from server.local_time import DEFAULT_ZONE, local_day, local_midnight_after

UTC = dt.timezone.utc


def at(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


class Unit:
    """One unit of devices that report at given UTC instants, through Store.ingest."""

    def __init__(self, store: Any, path: str, names: list[str]) -> None:
        self.store = store
        self.id = store.add_unit(path)["id"]
        token, _ = store.create_token(path, uses=len(names))
        self.devs: dict[str, tuple[str, Ed25519PrivateKey]] = {}
        self.seq: dict[str, int] = {}
        for name in names:
            key = Ed25519PrivateKey.generate()
            out = store.enroll(token=token, public_key_pem=wire.public_key_pem(key.public_key()),
                               device={"hostname": name, "platform": "linux", "os": "Debian GNU/Linux 12"})
            self.devs[name] = (out["device_id"], key)
            self.seq[name] = 0
        with store.engine.begin() as conn:  # enrolled long before every day the tests look at
            conn.execute(update(devices).where(devices.c.unit_id == self.id)
                         .values(enrolled_at=at("2025-12-01T00:00:00")))

    def report(self, name: str, generated: dt.datetime, store: Any = None) -> None:
        dev_id, key = self.devs[name]
        self.seq[name] += 1
        pred = wire.build_predicate(
            device={"id": dev_id, "hostname": name, "serial": "SN", "os": "Debian GNU/Linux 12", "platform": "linux"},
            agent_version="0.1.0", policy={"id": "baseline", "version": "1", "sha256": "ab" * 32},
            facts={"disk": {"encrypted": True}}, results=results(), verdict="ready", sequence=self.seq[name],
            generated_at=generated.isoformat().replace("+00:00", "Z"))
        env = wire.sign_envelope(wire.build_statement(device_id=dev_id, public_key=key.public_key(), predicate=pred),
                                 key)
        code, body = (store or self.store).ingest(wire.envelope_bytes(env),
                                                  received_at=generated + dt.timedelta(minutes=1))
        assert code == 201, body

    def days_of(self, name: str) -> list[dt.date]:
        with self.store.engine.connect() as conn:
            return [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]) for d in conn.execute(
                select(device_days.c.day).where(device_days.c.device_id == self.devs[name][0])
                .order_by(device_days.c.day)).scalars()]

    def trend(self, now: dt.datetime, days: int, zone: str = DEFAULT_ZONE) -> dict[dt.date, rd.TrendPoint]:
        with self.store.engine.connect() as conn:
            points = rd.trend(conn, rd.Scope(), self.id, now, days, zone=zone)
            conn.commit()
        assert len(points) == days
        return {p.day: p for p in points}


@pytest.fixture(scope="module")
def store(collector_db_url: str) -> Iterator[Any]:
    from server import migrate
    from server.db import make_engine
    from server.store import Store

    engine = make_engine(collector_db_url)
    migrate.upgrade(engine)
    try:
        yield Store(engine)  # the default zone: Europe/Stockholm
    finally:
        engine.dispose()


def state(p: rd.TrendPoint) -> tuple[int, int, int, int]:
    return p.ready, p.not_ready, p.stale, p.never_reported


def test_a_dst_day_is_23_or_25_hours_long():
    def length(day: dt.date) -> dt.timedelta:
        return local_midnight_after(day, DEFAULT_ZONE) - local_midnight_after(day - dt.timedelta(days=1), DEFAULT_ZONE)

    assert length(dt.date(2026, 3, 29)) == dt.timedelta(hours=23)
    assert length(dt.date(2026, 10, 25)) == dt.timedelta(hours=25)
    assert length(dt.date(2026, 1, 15)) == dt.timedelta(hours=24)
    assert local_midnight_after(dt.date(2026, 1, 14), DEFAULT_ZONE) == at("2026-01-14T23:00:00")


def test_a_report_at_2330_utc_on_a_winter_day_counts_for_the_next_local_day(store):
    u = Unit(store, "Tz/Winter", ["late", "early"])
    u.report("late", at("2026-01-14T23:30:00"))  # 00:30 CET on 15 January
    u.report("early", at("2026-01-14T22:30:00"))  # 23:30 CET on 14 January
    assert u.days_of("late") == [dt.date(2026, 1, 15)]
    assert u.days_of("early") == [dt.date(2026, 1, 14)]
    t = u.trend(at("2026-01-16T12:00:00"), 3)
    assert state(t[dt.date(2026, 1, 14)]) == (1, 0, 0, 1)  # only "early" had reported by 14 Jan's end
    assert state(t[dt.date(2026, 1, 15)]) == (1, 0, 1, 0)  # "late" fresh, "early" a day old: stale
    # The same report on a collector kept in UTC is filed under 14 January.
    from server.store import Store

    w = Unit(store, "Tz/WinterUtc", ["late"])
    w.report("late", at("2026-01-14T23:30:00"), store=Store(store.engine, time_zone="UTC"))
    assert w.days_of("late") == [dt.date(2026, 1, 14)]
    assert state(w.trend(at("2026-01-16T12:00:00"), 3, zone="UTC")[dt.date(2026, 1, 14)]) == (1, 0, 0, 0)


# (unit, the zone's DST day, its first minutes, its last, the next day's first, a moment after)
DST_DAYS = {
    # 29 March 2026 in Stockholm, 23 hours: 28 Mar 23:00 UTC .. 29 Mar 22:00 UTC. 00:10 CET
    # is the day's first minutes, 23:30 CEST its last, 00:30 CEST on 30 March the next day's.
    "spring_forward_day_of_23_hours": ("Tz/Spring", dt.date(2026, 3, 29), "2026-03-28T23:10:00",
                                       "2026-03-29T21:30:00", "2026-03-29T22:30:00", "2026-03-31T10:00:00"),
    # 25 October 2026 in Stockholm, 25 hours: 24 Oct 22:00 UTC .. 25 Oct 23:00 UTC. 00:30 CEST
    # (24 October in UTC), 23:30 CET in the day's 25th hour, 00:30 CET on 26 October.
    "fall_back_day_of_25_hours": ("Tz/Autumn", dt.date(2026, 10, 25), "2026-10-24T22:30:00",
                                  "2026-10-25T22:30:00", "2026-10-25T23:30:00", "2026-10-27T10:00:00"),
}


@pytest.mark.parametrize("case", list(DST_DAYS))
def test_a_dst_day_ends_at_local_midnight(store, case):
    name, day, first, last, following, then = DST_DAYS[case]
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    u = Unit(store, name, ["first", "last", "next"])
    u.report("first", at(first))
    u.report("last", at(last))
    u.report("next", at(following))
    assert [u.days_of(n) for n in ("first", "last", "next")] == [[day], [day], [after]]
    t = u.trend(at(then), 4)
    assert state(t[before]) == (0, 0, 0, 3)
    assert state(t[day]) == (2, 0, 0, 1)
    assert state(t[after]) == (1, 0, 2, 0)


def test_the_cache_of_closed_days_is_kept_per_zone(store):
    u = Unit(store, "Tz/Cache", ["a"])
    u.report("a", at("2026-02-10T12:00:00"))
    now = at("2026-02-12T12:00:00")
    day = dt.date(2026, 2, 10)
    assert u.trend(now, 3)[day].ready == 1
    with store.engine.begin() as conn:  # doctor the Stockholm row: the cache is what answers
        rows = conn.execute(select(unit_day_ready.c.zone).where(unit_day_ready.c.unit_id == u.id)).scalars().all()
        assert set(rows) == {DEFAULT_ZONE}
        conn.execute(update(unit_day_ready).where(unit_day_ready.c.unit_id == u.id, unit_day_ready.c.day == day)
                     .values(ready=99))
    assert u.trend(now, 3)[day].ready == 99
    # Another zone's days are other spans of time: never read from this zone's rows.
    assert u.trend(now, 3, zone="Europe/Copenhagen")[day].ready == 1
    assert u.trend(now, 3, zone="UTC")[day].ready == 1


def test_todays_point_is_the_tiles_just_after_local_midnight(store):
    u = Unit(store, "Tz/Today", ["a", "b"])
    u.report("a", at("2026-01-20T10:00:00"))
    u.report("b", at("2026-01-20T23:20:00"))  # 00:20 CET on 21 January: already today
    now = at("2026-01-20T23:40:00")  # 00:40 CET on 21 January
    t = u.trend(now, 2)
    today = t[local_day(now, DEFAULT_ZONE)]
    assert today.day == dt.date(2026, 1, 21)
    with store.engine.connect() as conn:
        tile = next(x for x in rd.overview(conn, rd.Scope(), now).units if x.path == "Tz/Today")
    want = {s: getattr(tile.counts, s) for s in rd.STATES}
    assert {s: today.count(s) for s in rd.STATES} == want and want["ready"] == 2
    assert today.ready_pct == tile.ready_pct
    assert state(t[dt.date(2026, 1, 20)]) == (1, 0, 0, 1)  # "b" reported after 20 January ended


@pytest.mark.parametrize("zone, enrolled, first_day", [
    (DEFAULT_ZONE, "2026-01-14T23:30:00", dt.date(2026, 1, 15)),  # 00:30 CET
    (DEFAULT_ZONE, "2026-01-14T22:30:00", dt.date(2026, 1, 14)),  # 23:30 CET
    ("Asia/Kolkata", "2026-01-14T18:40:00", dt.date(2026, 1, 15)),  # 00:10 IST: half-hour offset
    ("Asia/Kolkata", "2026-01-14T18:20:00", dt.date(2026, 1, 14)),  # 23:50 IST
])
def test_a_device_counts_from_the_local_day_it_was_enrolled(store, zone, enrolled, first_day):
    u = Unit(store, f"Tz/Enrol {zone.replace('/', ' ')} {enrolled}", ["old", "new"])
    with store.engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == u.devs["new"][0]).values(enrolled_at=at(enrolled)))
    t = u.trend(at("2026-01-16T12:00:00"), 3, zone=zone)
    assert {d: p.devices for d, p in t.items() if d < dt.date(2026, 1, 16)} == {
        d: 2 if d >= first_day else 1 for d in (dt.date(2026, 1, 14), dt.date(2026, 1, 15))}


@pytest.mark.parametrize("lang", ["sv", "da", "en"])
def test_the_rule_under_the_chart_names_the_zone_of_its_days(lang):
    from server.i18n_web import Translator

    t = Translator(lang, "Europe/Copenhagen")
    rule = t("trend.rule", zone=t.zone_name)
    assert "Europe/Copenhagen" in rule and "UTC" not in rule
