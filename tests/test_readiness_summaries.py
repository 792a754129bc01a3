"""Readiness summaries against hand-computed expectations, on SQLite and PostgreSQL.

The fleet (tests/readiness_fleet.py) is ingested through the real path (signed
envelopes, Store.ingest) at a fixed NOW; every number below was worked out by hand
from the fleet's plan."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from readiness_fleet import AO, BU, EB, IFO, KULTUR, NOW, SOC, table_counts
from server import readiness as rd

H = dt.timedelta(hours=1)


@pytest.fixture
def conn(fleet):
    with fleet.store.engine.connect() as c:
        yield c


def tree(conn, scope=rd.Scope(), now=NOW):
    return {u.path: u for u in rd.unit_tree(conn, scope, now)}


def counts(u):
    c = u.counts
    return (c.ready, c.not_ready, c.stale, c.never_reported)


def test_ingest_fills_latest_rows(fleet, conn):
    t = table_counts(conn)
    # 17 reports stored (k2's too: revocation keeps history); 4 checks per reporting device (14 devices).
    assert t["reports"] == 17
    assert t["device_checks"] == 14 * 4
    # Days: eb1 ×3 days, bu1 ×2, everyone else one day each (12 more) = 17 device-days.
    assert t["device_days"] == 3 + 2 + 12


def test_unit_tree_counts_and_rollup(conn):
    t = tree(conn)
    assert list(t) == [KULTUR, SOC, IFO, BU, EB, AO]
    #                      ready not_ready stale never
    assert counts(t[EB]) == (3, 2, 1, 1)
    assert counts(t[BU]) == (1, 1, 1, 0)
    assert counts(t[AO]) == (1, 1, 1, 0)  # 72 h: ao1 (50 h) still fresh, ao2 (80 h) stale
    assert counts(t[IFO]) == (4, 3, 2, 1)
    assert counts(t[SOC]) == (5, 4, 3, 1)
    assert counts(t[KULTUR]) == (1, 0, 0, 0)  # k2 revoked: left out
    assert t[EB].total == 7 and t[EB].ready_pct == 42.9
    assert t[IFO].ready_pct == 40.0 and t[SOC].ready_pct == 38.5 and t[BU].ready_pct == 33.3
    assert t[KULTUR].ready_pct == 100.0
    assert t[AO].max_report_age_hours == 72 and t[EB].max_report_age_hours == 24
    assert t[EB].parent_id == t[IFO].id and t[SOC].parent_id is None


def test_scope_limits_the_tree(conn):
    t = tree(conn, rd.Scope(IFO))
    assert sorted(t) == sorted([IFO, EB, BU])
    assert t[IFO].parent_id is None  # the parent lies outside the scope
    assert counts(t[IFO]) == (4, 3, 2, 1)


def test_time_moves_devices_to_stale(fleet, conn):
    later = NOW + 22.5 * H  # eb1, eb6 (1 h) → 23.5 h: fresh; eb2, eb3, eb7 → over 24 h: stale
    t = tree(conn, now=later)
    assert counts(t[EB]) == (2, 0, 4, 1)
    eb = rd.unit_detail(conn, rd.Scope(), fleet.units[EB], later, state="stale")
    assert sorted(d.hostname for d in eb.devices.items if "script" not in d.hostname) == [
        "eb2-laptop", "eb3-laptop", "eb4-laptop"]


def test_unit_detail(fleet, conn):
    eb_id = fleet.units[EB]
    d = rd.unit_detail(conn, rd.Scope(), fleet.units[IFO], NOW)
    assert d.summary.path == IFO and [c.path for c in d.children] == [BU, EB]
    # Counted of devices on a fresh report; bu2's disk-encrypted failure is 50 h old (stale): apart.
    assert [(f.check_id, f.severity, f.devices_failing, f.devices_excepted, f.devices_stale)
            for f in d.failing_checks] == [
        ("disk-encrypted", "required", 2, 0, 1), ("firewall", "required", 1, 0, 0),
        ("os-patched", "required", 1, 0, 0), ("screen-lock", "recommended", 1, 0, 0)]
    d = rd.unit_detail(conn, rd.Scope(), fleet.units[SOC], NOW)
    assert [(s.hostname, s.last_seen) for s in d.stale_longest] == [
        ("ao2-laptop", NOW - 80 * H), ("bu2-laptop", NOW - 50 * H), ("eb4-laptop", NOW - 30 * H)]
    assert d.devices.total == 13
    # problems first: not_ready, stale, never_reported, ready
    assert [x.state for x in d.devices.items] == ["not_ready"] * 4 + ["stale"] * 3 + ["never_reported"] + ["ready"] * 5
    d = rd.unit_detail(conn, rd.Scope(), eb_id, NOW, state="not_ready")
    assert {x.hostname: x.failing_checks for x in d.devices.items} == {
        "eb2-laptop": ["disk-encrypted"], "eb3-laptop": ["disk-encrypted", "os-patched"]}
    d = rd.unit_detail(conn, rd.Scope(), fleet.units[SOC], NOW, check="disk-encrypted")
    assert sorted(x.hostname for x in d.devices.items) == ["bu2-laptop", "eb2-laptop", "eb3-laptop"]
    d = rd.unit_detail(conn, rd.Scope(), fleet.units[SOC], NOW, per_page=5, page=3)
    assert d.devices.total == 13 and len(d.devices.items) == 3
    assert rd.unit_detail(conn, rd.Scope(), eb_id, NOW, os="windows").devices.total == 0
    assert rd.unit_detail(conn, rd.Scope(), eb_id, NOW, os="linux").devices.total == 7
    with pytest.raises(rd.NotFound):
        rd.unit_detail(conn, rd.Scope(KULTUR), eb_id, NOW)


def test_agent_versions(fleet, conn):
    d = rd.unit_detail(conn, rd.Scope(), fleet.units[AO], NOW)
    assert d.agent_versions.newest == "0.1.0"
    assert d.agent_versions.distribution == [("0.1.0", 2), ("0.0.9", 1)]
    assert d.agent_versions.outdated == 1
    assert {x.hostname: x.agent_outdated for x in d.devices.items} == {
        "ao1-laptop": True, "ao2-laptop": False, "ao3-laptop": False}
    assert rd.agent_versions(conn, rd.Scope(), AO, NOW, minimum="0.2").outdated == 3
    assert rd.version_key("0.10.0") > rd.version_key("0.9.1")


def test_device_detail(fleet, conn):
    eb1 = fleet.devices["eb1"]
    d = rd.device_detail(conn, rd.Scope(), eb1.id, NOW)
    assert d.device.state == "ready" and d.device.last_seen == NOW - H
    assert [r.check_id for r in d.results] == ["disk-encrypted", "os-patched", "firewall", "screen-lock"]
    assert d.facts == {"disk": {"encrypted": True}}
    assert d.timeline.total == 3 and [t.sequence for t in d.timeline.items] == [3, 2, 1]
    assert [t.verdict for t in d.timeline.items] == ["ready", "not_ready", "ready"]
    assert d.timeline.items[0].report_id == eb1.report_ids[-1]
    page2 = rd.device_detail(conn, rd.Scope(), eb1.id, NOW, per_page=2, page=2).timeline
    assert [t.sequence for t in page2.items] == [1]
    never = rd.device_detail(conn, rd.Scope(), fleet.devices["eb5"].id, NOW)
    assert never.device.state == "never_reported" and never.results == [] and never.timeline.total == 0
    for scope, dev in ((rd.Scope(KULTUR), "eb1"), (rd.Scope(), "k2"), (rd.Scope(), "no-such-device")):
        with pytest.raises(rd.NotFound):
            rd.device_detail(conn, scope, fleet.devices[dev].id if dev in fleet.devices else dev, NOW)


def test_report_envelope_verifies_offline(fleet, conn):
    eb1 = fleet.devices["eb1"]
    rep = rd.report_envelope(conn, rd.Scope(EB), eb1.report_ids[0])
    _, pem = rd.device_public_key(conn, rd.Scope(EB), eb1.id)
    st = wire_verify(rep.envelope, pem)
    assert st["predicate"]["sequence"] == 1
    with pytest.raises(rd.NotFound):
        rd.report_envelope(conn, rd.Scope(KULTUR), eb1.report_ids[0])


def wire_verify(envelope_text, pem):
    """Verify with securesystemslib's DSSE implementation, not ours."""
    import json

    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from auditagent import report as wire

    pub = load_pem_public_key(pem.encode())
    key = SSlibKey.from_crypto(pub, keyid=wire.keyid(pub))
    env = Envelope.from_dict(json.loads(envelope_text))
    env.verify([key], 1)
    return json.loads(env.payload)


def test_csv_export(fleet, conn):
    rows = list(csv.reader(io.StringIO("".join(rd.export_csv(conn, rd.Scope(), fleet.units[EB], NOW)))))
    assert rows[0] == list(rd.CSV_COLUMNS)
    assert len(rows) == 8
    by_state = {}
    for r in rows[1:]:
        by_state.setdefault(r[3], []).append(r)
    assert {k: len(v) for k, v in by_state.items()} == {"ready": 3, "not_ready": 2, "stale": 1, "never_reported": 1}
    evil = next(r for r in rows[1:] if "script" in r[1])
    assert evil[1].startswith("'=")  # formula injection defused
    eb3 = next(r for r in rows[1:] if r[1] == "eb3-laptop")
    assert eb3[6] == "disk-encrypted;os-patched" and eb3[2] == EB
    assert rd.csv_cell("+1") == "'+1" and rd.csv_cell("-2") == "'-2" and rd.csv_cell("@x") == "'@x"
    assert rd.csv_cell("a=b") == "a=b"


def test_trend_without_exceptions(fleet, conn):
    eb = rd.trend(conn, rd.Scope(), fleet.units[EB], NOW, days=3)
    D = NOW.date()
    assert [(p.day, p.ready, p.devices, p.ready_pct) for p in eb] == [
        (D - dt.timedelta(days=2), 1, 7, 14.3),  # eb1
        (D - dt.timedelta(days=1), 1, 7, 14.3),  # eb4 (eb1 failed that day)
        (D, 3, 7, 42.9)]  # eb1, eb6, eb7
    full = rd.trend(conn, rd.Scope(), fleet.units[EB], NOW)
    assert len(full) == 90 and full[0].day == D - dt.timedelta(days=89) and full[0].ready == 0
    # enrolled 30 days ago: no devices before that
    assert full[58].devices == 0 and full[59].devices == 7


# ------------------------------------------------------------------ exceptions (they change the state)


def test_exceptions_change_state_expire_and_cover_subtrees(fleet):
    from server import auth

    store, so_ifo, so_all = fleet.store, fleet.users["so_ifo"], fleet.users["so_all"]
    dev = fleet.devices
    with store.engine.begin() as conn:
        e_eb2 = rd.grant_exception(conn, so_ifo, check_id="disk-encrypted", device_id=dev["eb2"].id,
                                   expires_at=NOW + 10 * 24 * H, justification="replacement laptop ordered",
                                   now=NOW - 3 * H)
        rd.grant_exception(conn, so_ifo, check_id="os-patched", unit_id=fleet.units[IFO],
                           expires_at=NOW + 7 * 24 * H, justification="patch window moved by IT", now=NOW - H)
        rd.grant_exception(conn, so_ifo, check_id="disk-encrypted", device_id=dev["eb3"].id,
                           expires_at=NOW + 7 * 24 * H, justification="disk being re-encrypted", now=NOW - H)
        rd.grant_exception(conn, so_all, check_id="firewall", device_id=dev["bu1"].id,
                           expires_at=NOW - H, justification="expired one, granted two days ago",
                           now=NOW - 48 * H)
        e_ao3 = rd.grant_exception(conn, so_all, check_id="os-patched", device_id=dev["ao3"].id,
                                   expires_at=NOW + 24 * H, justification="to be revoked at once", now=NOW - 2 * H)
        rd.revoke_exception(conn, so_all, e_ao3.id, "granted by mistake", NOW - H)
    with store.engine.connect() as conn:
        t = tree(conn)
        assert counts(t[EB]) == (5, 0, 1, 1)  # eb2 and eb3 excepted
        assert counts(t[BU]) == (1, 1, 1, 0)  # bu1's exception expired
        assert counts(t[AO]) == (1, 1, 1, 0)  # ao3's revoked; IFO's unit exception does not reach AO
        assert t[EB].ready_pct == 71.4
        d = rd.unit_detail(conn, rd.Scope(), fleet.units[IFO], NOW)
        # bu2's disk-encrypted failure is stale (50 h): counted apart, not as failing
        assert [(f.check_id, f.devices_failing, f.devices_excepted, f.devices_stale)
                for f in d.failing_checks][:3] == [
            ("firewall", 1, 0, 0), ("disk-encrypted", 0, 2, 1), ("os-patched", 0, 1, 0)]
        eb3 = rd.device_detail(conn, rd.Scope(EB), dev["eb3"].id, NOW)
        assert eb3.device.state == "ready" and eb3.device.excepted_checks == ["disk-encrypted", "os-patched"]
        by = {r.check_id: r.excepted_by for r in eb3.results}
        assert by["disk-encrypted"] is not None and by["os-patched"] is not None and by["firewall"] is None
        # seen from EB's manager, the IFO-level exception is inherited, its unit not named
        inherited = [e for e in eb3.exceptions if e.check_id == "os-patched"][0]
        assert inherited.inherited and inherited.unit_path is None
        # expiry by itself: 11 days later eb2's exception has run out
        later = NOW + 11 * 24 * H
        assert rd.device_detail(conn, rd.Scope(), dev["eb2"].id, later).device.state == "stale"
        assert rd.list_exceptions(conn, rd.Scope(), later) == []
        assert {e.status for e in rd.list_exceptions(conn, rd.Scope(), NOW, include_expired=True)} == {
            "active", "expired", "revoked"}
        # trend: today eb2 and eb3 count as ready (exceptions active now)
        eb_trend = rd.trend(conn, rd.Scope(), fleet.units[EB], NOW, days=3)
        assert [p.ready for p in eb_trend] == [1, 1, 5]
        # bu1 failed the firewall yesterday and today; its exception ran until NOW-1h: covers
        # yesterday (at the day's end) but not today
        bu_trend = rd.trend(conn, rd.Scope(), fleet.units[BU], NOW, days=3)
        assert [(p.ready, p.devices) for p in bu_trend] == [(0, 3), (1, 3), (1, 3)]
        log = rd.audit_entries(conn, object_type="exception")
        assert [e.action for e in log].count("exception.grant") == 5
        assert [e.action for e in log].count("exception.revoke") == 1
        rev = next(e for e in log if e.action == "exception.revoke")
        assert rev.user == "so_all" and rev.detail["reason"] == "granted by mistake"
        grant = next(e for e in log if e.object_id == str(e_eb2.id) and e.action == "exception.grant")
        assert grant.user == "so_ifo" and grant.detail["justification"] == "replacement laptop ordered"
    # then revoke everything active so other tests see the base fleet
    with store.engine.begin() as conn:
        for e in rd.list_exceptions(conn, rd.Scope(), NOW):
            rd.revoke_exception(conn, so_all, e.id, "test clean-up", NOW)
    del auth


def test_exception_rules(fleet):
    so_ifo, mgr, admin = fleet.users["so_ifo"], fleet.users["mgr_eb"], fleet.users["admin"]
    dev = fleet.devices
    ok = dict(check_id="firewall", device_id=dev["eb1"].id, expires_at=NOW + 24 * H,
              justification="a long enough reason", now=NOW)
    with fleet.store.engine.begin() as conn:
        for user in (mgr, admin):
            with pytest.raises(rd.Forbidden):
                rd.grant_exception(conn, user, **ok)
        with pytest.raises(rd.NotFound):  # outside the officer's subtree
            rd.grant_exception(conn, so_ifo, **{**ok, "device_id": dev["ao1"].id})
        with pytest.raises(rd.NotFound):  # a parent unit is outside too
            rd.grant_exception(conn, so_ifo, **{**ok, "device_id": None, "unit_id": fleet.units[SOC]})
        for bad in ({"justification": "  "}, {"expires_at": NOW - H}, {"expires_at": NOW + 181 * 24 * H},
                    {"unit_id": fleet.units[EB]}, {"device_id": None}, {"check_id": "bad id!"}):
            with pytest.raises(rd.Invalid):
                rd.grant_exception(conn, so_ifo, **{**ok, **bad})
        conn.rollback()
