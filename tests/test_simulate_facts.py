"""The simulated fleet's facts speak the agent's language: reason codes, the patches
section as the probes build it, and major upgrades as the macOS probe classifies them."""
from __future__ import annotations

import datetime as dt
import random

from auditagent import reasons as reason_codes
from auditagent.probes import not_applicable
from auditagent.probes.patches.macos import is_offer_only
from auditagent.probes.patches.section import patches_section
from server.simulate import FleetSpec, _profile, synth_facts

SECTIONS = ("os", "disk", "patches", "cloud", "firewall", "screen_lock", "antimalware")


def _fleet(n: int = 400, seed: int = 11) -> list[tuple[object, dict]]:
    rng = random.Random(seed)
    spec = FleetSpec(devices=n, days=10, seed=seed)
    t = dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        p = _profile(rng, i, "Socialförvaltningen", spec)
        out.append((p, synth_facts(p, 5.0, t, rng)))
    return out


def test_every_reason_is_a_reason_code():
    fleet = _fleet()
    seen = [r for _, f in fleet for s in SECTIONS for r in f[s]["reasons"]]
    assert seen, "the simulated fleet should include sections that could not be seen"
    for r in seen:
        assert reason_codes.parse(r) is not None, r
    # The unknown Linux disks and non-Windows antimalware are among them.
    assert any(f["disk"]["status"] == "unknown" for p, f in fleet if p.platform == "linux")
    assert {f["antimalware"]["status"] for p, f in fleet if p.platform != "windows"} == {"not_applicable"}
    assert all(f["antimalware"] == not_applicable("antimalware") for p, f in fleet if p.platform != "windows")


def test_patches_section_has_the_probes_shape():
    shape = set(patches_section(manager="softwareupdate", last_update=None, pending=None, pending_security=None,
                                oldest_days=None, names=[], reboot=None, reasons=[]))
    for _, f in _fleet(60):
        assert set(f["patches"]) == shape


def test_offered_upgrades_are_what_the_macos_probe_calls_offers():
    macs = [(p, f) for p, f in _fleet() if p.platform == "macos"]
    below = [(p, f) for p, f in macs if int(p.os["version"].split(".")[0]) < 26]
    newest = [(p, f) for p, f in macs if int(p.os["version"].split(".")[0]) >= 26]
    assert below and newest
    for p, f in below:
        [title] = f["patches"]["offered_upgrades"]
        current = tuple(int(x) for x in p.os["version"].split("."))
        update = {"label": title, "title": title, "version": title.rsplit(" ", 1)[-1]}
        assert is_offer_only(update, current), (title, current)
    assert all(f["patches"]["offered_upgrades"] == [] for _, f in newest)
    assert all(f["patches"]["offered_upgrades"] == [] for p, f in _fleet(80) if p.platform != "macos")
