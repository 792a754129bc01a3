"""Evaluation is a pure function of (policy, facts); never a pass it did not see."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditagent.evaluate import (compare_versions, evaluate, evaluate_check, resolve_path)
from auditagent.policy import Check, Policy

NOW = "2026-11-01T12:00:00+00:00"
TEXT = {"sv": "s", "da": "d", "en": "e"}
KIND_DEFAULTS = {
    "disk_encryption": {"system": True, "fixed": True, "swap": True, "allow_in_progress": False},
    "os_patches": {"max_days_since_update": 14, "max_pending_security": 0, "allow_reboot_pending": True},
    "os_supported": {"minimum": {"debian": "12", "windows": {"default": "10.0.26100", "EnterpriseS": "10.0.17763"},
                                 "macos": "14"}, "unlisted": "unknown"},
    "cloud_storage": {"approved": [{"client": "onedrive", "kind": "business", "tenant": "t-1"},
                                   {"client": "nextcloud", "server": "https://moln.example.se"}],
                      "flag_installed": True},
    "firewall": {"all_profiles": True},
    "screen_lock": {"max_idle_seconds": 300},
    "antimalware": {"realtime": True, "max_signature_age_days": 3},
}


def mkcheck(kind: str, severity: str = "required", cid: str | None = None, platforms=None, **params) -> Check:
    p = dict(KIND_DEFAULTS.get(kind, {}))
    p.update(params)
    return Check(id=cid or kind, kind=kind, severity=severity, title=TEXT, rationale=TEXT, parameters=p,
                 remediation={"any": {"sv": ["fix"], "da": ["fix"], "en": ["fix"]}},
                 platforms=tuple(platforms) if platforms else None)


def facts(**sections) -> dict:
    f = {"collected_at": NOW, "platform": "linux"}
    for name, sec in sections.items():
        f[name] = {"status": "ok", "reasons": [], **sec}
    return f


def vol(mount, role, encrypted, **kw):
    return {"mount": mount, "device": f"/dev/{mount.strip('/') or 'root'}", "role": role, "fixed": True,
            "encrypted": encrypted, **kw}


# ------------------------------------------------------------ per kind


def test_disk_encryption_all_encrypted_passes():
    f = facts(disk={"volumes": [vol("/", "system", True, method="luks2"), vol("[SWAP]", "swap", True, method="ram")]})
    r = evaluate_check(mkcheck("disk_encryption"), f)
    assert r.status == "pass" and r.messages[0].code == "disk.all_encrypted"
    assert r.evidence["disk.volumes"][0]["method"] == "luks2"


def test_disk_encryption_unencrypted_home_fails_and_names_it():
    f = facts(disk={"volumes": [vol("/", "system", True), vol("/home", "home", False)]})
    r = evaluate_check(mkcheck("disk_encryption"), f)
    assert r.status == "fail"
    assert [m.args["mount"] for m in r.messages if m.code == "disk.not_encrypted"] == ["/home"]
    assert evaluate_check(mkcheck("disk_encryption", fixed=False), f).status == "pass"


def test_disk_encryption_unknown_volume_is_unknown_not_pass():
    f = facts(disk={"volumes": [vol("/", "system", None, reason="no permission")]})
    assert evaluate_check(mkcheck("disk_encryption"), f).status == "unknown"


def test_disk_encryption_missing_system_volume_is_unknown():
    f = facts(disk={"volumes": [vol("/home", "home", True)]})
    assert evaluate_check(mkcheck("disk_encryption"), f).status == "unknown"


def test_disk_encryption_in_progress_and_suspended():
    enc = facts(disk={"volumes": [vol("C:", "system", False, state="encrypting", percent=50.0, method="bitlocker")]})
    assert evaluate_check(mkcheck("disk_encryption"), enc).status == "fail"
    assert evaluate_check(mkcheck("disk_encryption", allow_in_progress=True), enc).status == "pass"
    sus = facts(disk={"volumes": [vol("C:", "system", False, state="suspended", method="bitlocker")]})
    r = evaluate_check(mkcheck("disk_encryption", allow_in_progress=True), sus)
    assert r.status == "fail" and r.messages[0].code == "disk.suspended"


@pytest.mark.parametrize("state", ["suspended", "clear_key", "waiting_activation", "deferred", "pending_restart"])
def test_each_unprotected_state_fails_with_its_own_translated_message(state):
    from auditagent.i18n import translate
    f = facts(disk={"volumes": [vol("C:", "system", False, state=state, method="bitlocker")]})
    r = evaluate_check(mkcheck("disk_encryption", allow_in_progress=True), f)
    assert r.status == "fail" and [m.code for m in r.messages] == [f"disk.{state}"]
    texts = {lang: translate(f"disk.{state}", r.messages[0].args, lang) for lang in ("sv", "da", "en")}
    assert len(set(texts.values())) == 3 and all("C:" in t and f"disk.{state}" not in t for t in texts.values())


def test_removable_volume_not_judged():
    f = facts(disk={"volumes": [vol("/", "system", True), {**vol("/media/usb", "data", False), "fixed": False}]})
    assert evaluate_check(mkcheck("disk_encryption"), f).status == "pass"


def test_os_patches():
    ok = facts(patches={"last_update": "2026-10-25T08:00:00+00:00", "pending_security": 0, "reboot_required": False})
    assert evaluate_check(mkcheck("os_patches"), ok).status == "pass"
    old = facts(patches={"last_update": "2026-10-01T08:00:00+00:00", "pending_security": 0})
    r = evaluate_check(mkcheck("os_patches"), old)
    assert r.status == "fail" and r.evidence["days_since_update"] == 31.2
    pend = facts(patches={"last_update": "2026-10-25T08:00:00+00:00", "pending_security": 3})
    r = evaluate_check(mkcheck("os_patches"), pend)
    assert r.status == "fail" and any(m.code == "patches.pending_security" and m.args["count"] == 3 for m in r.messages)
    assert evaluate_check(mkcheck("os_patches", max_pending_security=5), pend).status == "pass"
    reboot = facts(patches={"last_update": "2026-10-25T08:00:00+00:00", "pending_security": 0, "reboot_required": True})
    assert evaluate_check(mkcheck("os_patches"), reboot).status == "pass"
    assert evaluate_check(mkcheck("os_patches", allow_reboot_pending=False), reboot).status == "fail"
    aged = facts(patches={"last_update": "2026-10-25T08:00:00+00:00", "pending_security": 1,
                          "pending_security_oldest_days": 9.0})
    r = evaluate_check(mkcheck("os_patches", max_pending_security=2, max_pending_security_age_days=7), aged)
    assert r.status == "fail" and r.messages[-1].code == "patches.pending_security_old"
    unseen = facts(patches={"last_update": None, "pending_security": 0})
    assert evaluate_check(mkcheck("os_patches"), unseen).status == "unknown"


def test_os_supported_versions_and_editions():
    chk = mkcheck("os_supported")
    assert evaluate_check(chk, facts(os={"id": "debian", "version": "12"})).status == "pass"
    assert evaluate_check(chk, facts(os={"id": "debian", "version": "11"})).status == "fail"
    assert evaluate_check(chk, facts(os={"id": "macos", "version": "13.6.1"})).status == "fail"
    assert evaluate_check(chk, facts(os={"id": "macos", "version": "15.1"})).status == "pass"
    win23h2 = {"id": "windows", "version": "10.0.22631", "build": "22631.4460", "edition": "Enterprise"}
    r = evaluate_check(chk, facts(os=win23h2))
    assert r.status == "fail" and r.evidence["os.version"] == "10.0.22631"
    ltsc = {"id": "windows", "version": "10.0.17763", "build": "17763.6532", "edition": "EnterpriseS"}
    assert evaluate_check(chk, facts(os=ltsc)).status == "pass"
    assert evaluate_check(chk, facts(os={"id": "arch", "version": "rolling"})).status == "unknown"
    assert evaluate_check(mkcheck("os_supported", unlisted="fail"), facts(os={"id": "arch"})).status == "fail"
    assert evaluate_check(chk, facts(os={"id": "debian", "version": None})).status == "unknown"


def test_cloud_storage():
    chk = mkcheck("cloud_storage")
    good = facts(cloud={"clients": [
        {"name": "onedrive", "installed": True, "running": True,
         "accounts": [{"kind": "business", "tenant": "T-1", "email_domain": "kommun.example.se"}]},
        {"name": "nextcloud", "installed": True, "running": True,
         "accounts": [{"server": "https://moln.example.se/"}]}]})
    r = evaluate_check(chk, good)
    assert r.status == "pass" and r.messages[0].code == "cloud.ok"
    personal = facts(cloud={"clients": [{"name": "onedrive", "installed": True, "running": True,
                                         "accounts": [{"kind": "personal", "tenant": None}]}]})
    r = evaluate_check(chk, personal)
    assert r.status == "fail" and r.messages[0].code == "cloud.unapproved_account"
    dropbox = facts(cloud={"clients": [{"name": "dropbox", "installed": True, "running": False, "accounts": []}]})
    r = evaluate_check(chk, dropbox)
    assert r.status == "fail" and r.messages[0].args == {"client": "dropbox", "how": "installed"}
    assert evaluate_check(mkcheck("cloud_storage", flag_installed=False), dropbox).status == "pass"
    evil_server = facts(cloud={"clients": [{"name": "nextcloud", "installed": True, "running": True,
                                            "accounts": [{"server": "https://moln.example.se.evil.test"}]}]})
    assert evaluate_check(chk, evil_server).status == "fail"
    no_server = facts(cloud={"clients": [{"name": "nextcloud", "installed": True, "running": True,
                                          "accounts": [{"server": None}]}]})
    assert evaluate_check(chk, no_server).status == "unknown"
    idle = facts(cloud={"clients": [{"name": "onedrive", "installed": True, "running": False, "accounts": []}]})
    assert evaluate_check(chk, idle).status == "pass"
    assert evaluate_check(chk, facts(cloud={"clients": []})).messages[0].code == "cloud.none"


def test_firewall():
    chk = mkcheck("firewall")
    assert evaluate_check(chk, facts(firewall={"enabled": True, "backend": "nftables"})).status == "pass"
    assert evaluate_check(chk, facts(firewall={"enabled": False, "backend": "nftables"})).status == "fail"
    assert evaluate_check(chk, facts(firewall={"enabled": None})).status == "unknown"
    win = facts(firewall={"enabled": True, "backend": "windows", "profiles": {"domain": True, "private": True,
                                                                            "public": False}})
    r = evaluate_check(chk, win)
    assert r.status == "fail" and r.messages[0].args["profiles"] == "public"
    assert evaluate_check(mkcheck("firewall", all_profiles=False), win).status == "pass"


def test_screen_lock():
    chk = mkcheck("screen_lock")
    assert evaluate_check(chk, facts(screen_lock={"enabled": True, "idle_seconds": 300})).status == "pass"
    assert evaluate_check(chk, facts(screen_lock={"enabled": True, "idle_seconds": 301})).status == "fail"
    assert evaluate_check(chk, facts(screen_lock={"enabled": False, "idle_seconds": 60})).status == "fail"
    assert evaluate_check(chk, facts(screen_lock={"enabled": True, "idle_seconds": None})).status == "unknown"
    na = facts(screen_lock={"status": "not_applicable", "reasons": ["no graphical desktop"], "enabled": None})
    assert evaluate_check(chk, na).status == "not_applicable"


def test_antimalware_and_platform_restriction():
    chk = mkcheck("antimalware", platforms=["windows"])
    linux = facts()
    assert evaluate_check(chk, linux).status == "not_applicable"
    win = {**facts(antimalware={"realtime": True, "signature_age_days": 1, "product": "Microsoft Defender"}),
           "platform": "windows"}
    assert evaluate_check(chk, win).status == "pass"
    win["antimalware"]["signature_age_days"] = 5
    assert evaluate_check(chk, win).status == "fail"


def test_fact_kind_operators():
    f = facts(os={"id": "debian", "version": "12.7"},
              disk={"volumes": [vol("/", "system", True), vol("/home", "home", False)]})
    def st_(**p):
        p.setdefault("quantifier", "all")
        p.setdefault("missing", "unknown")
        return evaluate_check(mkcheck("fact", **p), f).status
    assert st_(path="os.id", op="equals", value="Debian") == "pass"
    assert st_(path="os.id", op="in", value=["ubuntu", "debian"]) == "pass"
    assert st_(path="os.id", op="not_in", value=["debian"]) == "fail"
    assert st_(path="os.version", op="at_least", value="12.2") == "pass"
    assert st_(path="os.version", op="at_most", value="12") == "fail"
    assert st_(path="os.id", op="matches", value="^deb") == "pass"
    assert st_(path="disk.volumes[].encrypted", op="equals", value=True) == "fail"
    assert st_(path="disk.volumes[].encrypted", op="equals", value=True, quantifier="any") == "pass"
    assert st_(path="os.nothing", op="equals", value=1) == "unknown"
    assert st_(path="os.nothing", op="equals", value=1, missing="fail") == "fail"
    assert st_(path="os.nothing", op="exists") == "unknown"


def test_unknown_section_gates_every_kind():
    for kind, section in [("disk_encryption", "disk"), ("os_patches", "patches"), ("os_supported", "os"),
                          ("cloud_storage", "cloud"), ("firewall", "firewall"), ("screen_lock", "screen_lock")]:
        f = facts(**{section: {"status": "unknown", "reasons": ["tool missing"]}})
        r = evaluate_check(mkcheck(kind), f)
        assert r.status == "unknown", kind
        assert r.messages[0].args["reasons"] == ["tool missing"]
        assert evaluate_check(mkcheck(kind), facts()).status == "unknown", kind  # section absent


# ------------------------------------------------------------ properties

maybe_bool = st.sampled_from([True, False, None])
volumes = st.lists(st.builds(lambda m, role, enc, fixed: {"mount": m, "device": "/dev/x", "role": role,
                                                          "fixed": fixed, "encrypted": enc},
                             st.sampled_from(["/", "/home", "/srv", "[SWAP]", "C:", "D:"]),
                             st.sampled_from(["system", "home", "data", "swap"]), maybe_bool, st.booleans()),
                   max_size=6)


@given(volumes, st.booleans(), st.booleans(), st.booleans())
def test_disk_encryption_never_passes_what_it_did_not_see(vols, system, fixed, swap):
    f = facts(disk={"volumes": vols})
    before = copy.deepcopy(f)
    r = evaluate_check(mkcheck("disk_encryption", system=system, fixed=fixed, swap=swap), f)
    assert f == before  # pure: facts untouched
    chosen = [v for v in vols if (v["role"] == "system" and system) or (v["role"] in ("home", "data") and fixed
                                                                         and v["fixed"]) or (v["role"] == "swap" and swap)]
    if r.status == "pass":
        assert chosen and all(v["encrypted"] is True for v in chosen)
        assert not system or any(v["role"] == "system" for v in vols)
    if any(v["encrypted"] is False for v in chosen):
        assert r.status == "fail"


@given(st.booleans() | st.none(), st.integers(min_value=0, max_value=10_000) | st.none(),
       st.integers(min_value=0, max_value=5_000))
def test_screen_lock_property(enabled, seconds, limit):
    r = evaluate_check(mkcheck("screen_lock", max_idle_seconds=limit),
                       facts(screen_lock={"enabled": enabled, "idle_seconds": seconds}))
    assert (r.status == "pass") == (enabled is True and seconds is not None and seconds <= limit)


@given(st.floats(min_value=0, max_value=400), st.integers(min_value=0, max_value=400),
       st.integers(min_value=0, max_value=20) | st.none(), st.integers(min_value=0, max_value=20))
def test_os_patches_property(days_ago, max_days, pending, max_pending):
    last = (dt.datetime.fromisoformat(NOW) - dt.timedelta(days=days_ago)).isoformat()
    r = evaluate_check(mkcheck("os_patches", max_days_since_update=max_days, max_pending_security=max_pending),
                       facts(patches={"last_update": last, "pending_security": pending}))
    expect_fail = round(days_ago, 1) > max_days or (pending is not None and pending > max_pending)
    assert (r.status == "fail") == expect_fail
    if pending is None and not expect_fail:
        assert r.status == "unknown"


statuses_for = st.sampled_from(["required", "recommended"])


@given(st.lists(st.tuples(statuses_for, st.sampled_from([True, False, None])), min_size=1, max_size=8))
@settings(max_examples=200)
def test_verdict_ready_iff_every_required_check_passes(spec):
    # Each check judges its own fact, so every mix of outcomes can be drawn.
    checks = tuple(mkcheck("fact", severity=sev, cid=f"c{i}", path=f"custom.c{i}", op="equals", value=True,
                           quantifier="all", missing="unknown") for i, (sev, _) in enumerate(spec))
    f = {"collected_at": NOW, "platform": "linux", "custom": {f"c{i}": v for i, (_, v) in enumerate(spec)}}
    policy = Policy(id="p", version="1", title=TEXT, description=TEXT, checks=checks)
    ev = evaluate(policy, f)
    assert ev == evaluate(policy, copy.deepcopy(f))  # deterministic
    expected = all(v is True for sev, v in spec if sev == "required")
    assert (ev.verdict == "ready") == expected
    assert sum(ev.counts.values()) == len(spec)


versions = st.lists(st.integers(min_value=0, max_value=30000), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts)))


@given(versions, versions)
def test_version_comparison_is_antisymmetric(a, b):
    assert compare_versions(a, b) == -compare_versions(b, a)
    assert compare_versions(a, a) == 0


def test_version_comparison_examples():
    assert compare_versions("10.0.22631.3447", "10.0.26100") == -1
    assert compare_versions("14", "13.6.1") == 1
    assert compare_versions("22.04", "22.04.0") == 0
    assert compare_versions("rolling", "1") is None


def test_resolve_path():
    f = {"a": {"b": [{"c": 1}, {"c": 2}, {"d": 3}]}}
    assert resolve_path(f, "a.b[].c") == [1, 2]
    assert resolve_path(f, "a.x") == []
