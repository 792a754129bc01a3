"""Windows Update pending list: real listings (PSWindowsUpdate tables, a WUA update object
in Format-List) turned into the records the snapshot's search carries, through the probe."""
from __future__ import annotations

import datetime as dt
import re

from _winhelpers import windows_host
from conftest import OWN_FIXTURES

from auditagent.probes import Cache, ProbeContext
from auditagent.probes.patches.windows import SEEN_KEY, is_security, update_identity
from auditagent.probes.patches.windows import probe as patches_windows
from auditagent.probes.sources.windows_format_list import parse_format_list

WU = OWN_FIXTURES / "public/windows/windows_update"
AU = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update"

# PSWindowsUpdate's table: [X] ComputerName Status|Result [KB] Size Title. The KB column is
# "KB" + the update's KBArticleIDs; drivers have none. Columns are found by their tokens, not
# by position: posters shorten or censor the computer name and the columns shift.
_ROW = re.compile(r"^(?:\d+ )?(?P<computer>\S+)\s+(?P<status>[-A-Z?]{6,7}|[A-Z][a-z]+)\s+"
                  r"(?:(?P<kb>KB\d+)\s+)?(?P<size>\d+(?:KB|MB|GB|B))\s(?P<title>.*)$")


def pswindowsupdate_rows(text: str) -> list[dict[str, object]]:
    rows = []
    for line in text.splitlines():
        m = _ROW.match(line.rstrip())
        if m and not line.startswith(("ComputerName", "---", "X ", "- ")):
            rows.append(m.groupdict())
    return rows


def as_search_records(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """What the snapshot's search (IsInstalled=0 and IsHidden=0 and Type='Software') would
    return of a listing: no drivers (no KB, "Vendor - Class - date - version" titles), nothing
    installed (status flag I). The table has no classification, so the records carry the
    title and KB only."""
    def searched(status: str) -> bool:  # flags [A|R]DIMHUB: I (index 2) installed, H (4) hidden
        if len(status) == 7 and status[0] in "-AR":
            return status[2] != "I" and status[4] != "H"
        return status != "Installed"  # an install-result table's Result column
    return [{"Title": r["title"], "KBArticleIDs": [str(r["kb"])[2:]]} for r in rows
            if r["kb"] and searched(str(r["status"]))]


def _probe(records, tmp_path=None, clock=None):
    host = windows_host({"schema": 1, "hotfixes": [], "wu_pending": records}, registry={AU: {}})
    if clock:
        host.clock = clock
    return patches_windows(ProbeContext(host, cache=Cache(tmp_path)))


def test_public_get_windowsupdate_defender_definitions_and_drivers():
    rows = pswindowsupdate_rows((WU / "pswindowsupdate-get-windowsupdate-potato-defender-intel-drivers.txt").read_text())
    assert len(rows) == 7 and [r["kb"] for r in rows].count(None) == 6  # six drivers, no KB
    records = as_search_records(rows)
    assert [update_identity(r) for r in records] == ["KB2267602"]
    out = _probe(records)
    # The table says nothing about classification: pending is counted, security stays unknown.
    assert out["pending"] == 1 and out["pending_security"] is None
    assert "patches.no_security_info: Windows Update" in out["reasons"]


def test_public_get_windowsupdate_censored_name_and_powershell_7_ellipsis():
    rows = pswindowsupdate_rows(
        (WU / "pswindowsupdate-get-windowsupdate-censored-dotnet-preview-defender-ellipsis.txt").read_text())
    assert [r["kb"] for r in rows] == ["KB5034467", "KB2267602", None, None]
    assert rows[0]["title"].endswith("\u2026") and rows[1]["size"] == "827MB"
    out = _probe(as_search_records(rows))
    assert out["pending"] == 2 and out["pending_security"] is None


def test_public_polish_listing_keys_updates_by_kb_not_by_title():
    rows = pswindowsupdate_rows((WU / "pswindowsupdate-help-example1-polish-wsus-mg-pc.txt").read_text())
    records = as_search_records(rows)
    assert [update_identity(r) for r in records] == ["KB890830", "KB4034658", "KB4034662", "KB4035631"]
    assert _probe(records)["pending"] == 4
    # The same update in two UI languages: one identity.
    polish = pswindowsupdate_rows(
        (WU / "pswindowsupdate-help-example8-polish-install-defender-definitions.txt").read_text())
    english = pswindowsupdate_rows(
        (WU / "pswindowsupdate-get-windowsupdate-potato-defender-intel-drivers.txt").read_text())
    pl = next(r for r in polish if r["kb"] == "KB2267602")
    en = next(r for r in english if r["kb"] == "KB2267602")
    assert pl["title"].startswith("Aktualizacja definicji") and en["title"].startswith("Security Intelligence")
    assert update_identity(as_search_records([pl])[0]) == update_identity(as_search_records([en])[0]) == "KB2267602"


def test_public_installed_listing_has_nothing_pending():
    rows = pswindowsupdate_rows((WU / "pswindowsupdate-get-windowsupdate-isinstalled-win11-24h2.txt").read_text())
    assert len(rows) == 15 and {r["status"] for r in rows} == {"-DI----", "--I----"}
    assert [r["kb"] for r in rows].count(None) == 3  # Admin Center and PowerShell: no KB
    out = _probe(as_search_records(rows))
    assert out["pending"] == 0 and out["pending_security"] == 0 and out["pending_names"] == []


def _german_update_object() -> dict[str, str]:
    text = (WU / "pswindowsupdate-install-result-fl-german-dotnet-kb5032339-comment.txt").read_text()
    # The object sits in a script's comment: undo exactly the comment's "<50 spaces>#   ".
    body = "\n".join(re.sub(r"^ {50}# {3}", "", line) for line in text.splitlines()[1:])
    (obj,) = parse_format_list(body)
    return obj


def test_public_german_update_object_msrc_severity_is_english():
    obj = _german_update_object()
    assert obj["Title"].startswith("2023-11 Kumulatives Update") and obj["MsrcSeverity"] == "Important"
    assert obj["RebootRequired"] == "True" and obj["IsInstalled"] == "False"
    record = {"Title": obj["Title"], "MsrcSeverity": obj["MsrcSeverity"], "KBArticleIDs": [obj["KB"]],
              "CategoryIDs": [], "RebootRequired": obj["RebootRequired"] == "True"}
    assert is_security(record) is True and update_identity(record) == "KB5032339"
    out = _probe([record])
    assert out["pending"] == 1 and out["pending_security"] == 1 and out["pending_names"] == [obj["Title"]]
    # An update that is merely pending and would need a restart is not "reboot required".
    assert out["reboot_required"] is False


def test_pending_clock_survives_a_title_change_and_carries_over_title_keys(tmp_path):
    obj = _german_update_object()
    record = {"Title": obj["Title"], "MsrcSeverity": "Important", "KBArticleIDs": ["5032339"], "CategoryIDs": []}
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    # An older agent remembered the update by its (German) title, three days ago.
    Cache(tmp_path).store(SEEN_KEY, {obj["Title"]: (t0 - dt.timedelta(days=3)).isoformat(timespec="seconds")})
    assert _probe([record], tmp_path, t0)["pending_security_oldest_days"] == 3.0
    assert set(Cache(tmp_path).load(SEEN_KEY)) == {"KB5032339"}
    # Shown in another language two days later: the same update, the same clock.
    renamed = dict(record, Title="2023-11 Cumulative Update for .NET Framework (KB5032339)")
    assert _probe([renamed], tmp_path, t0 + dt.timedelta(days=2))["pending_security_oldest_days"] == 5.0


def test_unclassified_record_is_unknown_not_harmless():
    assert is_security({"Title": "x", "KBArticleIDs": ["1"]}) is None
    assert is_security({"Title": "x", "MsrcSeverity": None, "CategoryIDs": []}) is False
    assert is_security({"CategoryIDs": ["0FA1201D-4330-4FA8-8AE9-B877473B6441"]}) is True
    assert update_identity({"Title": "PowerShell v7.4.3 (x64)", "KBArticleIDs": []}) == "PowerShell v7.4.3 (x64)"
