"""Windows hot-fixes and update history: systeminfo, wmic qfe, the snapshot."""
from __future__ import annotations

import datetime as dt
import re
from _winhelpers import windows_host

import pytest
from conftest import shared

from auditagent.probes import ProbeContext
from auditagent.probes.patches.windows import last_installed
from auditagent.probes.patches.windows_hotfix import parse_qfe_installed_on
from auditagent.probes.patches.windows import probe as patches_windows
from auditagent.probes.patches.windows_systeminfo import (decode_systeminfo, decode_wmic, parse_date, parse_systeminfo, parse_wmic_qfe)

OSV = "windows/os-version/"
CASES = [
    # file, name, version, hotfixes, install date (only when unambiguous and labels are English)
    ("systeminfo-win10-1803-x86-nl-format.txt", "Microsoft Windows 10 Enterprise", "10.0.17134",
     ["KB4230204", "KB4456655", "KB4457146", "KB4457128"], dt.date(2019, 1, 26)),
    ("systeminfo-win10-1809-education-es-cp850.txt", "Microsoft Windows 10 Education", "10.0.17763",
     ["KB4486553", "KB4465477", "KB4465664", "KB4469041", "KB4470502", "KB4470788", "KB4480056", "KB4487038",
      "KB4482887"], None),
    ("systeminfo-win10-1809-ltsc-zh-cn-gbk.txt", None, "10.0.17763", ["KB4464455"], None),
    ("systeminfo-win10-22h2-enterprise.txt", "Microsoft Windows 10 Enterprise", "10.0.19045", ["KB5022502"],
     dt.date(1999, 1, 1)),
    ("systeminfo-win11-22h2-home-laptop-stale.txt", "Microsoft Windows 11 Home Single Language", "10.0.22621",
     ["KB5008215"], None),  # 7/2/2023: July or February? unknown
    ("systeminfo-win11-23h2-enterprise-vmware.txt", "Microsoft Windows 11 Enterprise", "10.0.22631",
     ["KB5029921", "KB5027397", "KB5031354", "KB5031592"], None),
    ("systeminfo-win11-24h2-ltsc-hyperv.txt", "Microsoft Windows 11 Enterprise LTSC", "10.0.26100",
     ["KB5037589", "KB5037783", "KB5039449"], dt.date(2024, 5, 24)),
]


@pytest.mark.parametrize("name,os_name,version,hotfixes,installed", CASES)
def test_systeminfo_captures(name, os_name, version, hotfixes, installed):
    info = parse_systeminfo(decode_systeminfo(shared(OSV + name).read_bytes()))
    assert info["version"] == version and info["build"] == version.rsplit(".", 1)[1]
    assert info["name"] == os_name
    assert info["hotfixes"] == hotfixes and info["hotfix_count"] == len(hotfixes)
    assert info["install_date"] == installed


def test_systeminfo_localised_outputs_are_decoded_and_unreadable_parts_stay_unknown():
    es = decode_systeminfo(shared(OSV + "systeminfo-win10-1809-education-es-cp850.txt").read_bytes())
    assert "Versión del sistema operativo" in es  # cp850, not mojibake
    zh = decode_systeminfo(shared(OSV + "systeminfo-win10-1809-ltsc-zh-cn-gbk.txt").read_bytes())
    assert "修补程序" in zh  # GBK
    info = parse_systeminfo(zh)
    assert info["name"] is None and info["reasons"][0].startswith("output.language: systeminfo")
    assert info["language"] is None and info["install_date"] is None


def test_parse_date_only_when_unambiguous():
    assert parse_date("26-1-2019, 08:27:55") == dt.date(2019, 1, 26)
    assert parse_date("2019/1/24, 9:46:29") == dt.date(2019, 1, 24)
    assert parse_date("7/2/2023, 4:47:10 PM") is None
    assert parse_date("11/3/2023, 8:10:27 AM") is None


def test_wmic_qfe_utf16le_capture():
    rows = parse_wmic_qfe(decode_wmic(shared("windows/updates/wmic-qfe-win10-1809-utf16le.txt").read_bytes()))
    assert [r["HotFixID"] for r in rows] == ["KB4486553", "KB4470788", "KB4480056", "KB4487038", "KB4482887"]
    assert rows[1]["Description"] == "Security Update"
    last, dated = last_installed(rows)
    assert last == "2019-03-07T00:00:00+00:00" and dated == 5  # M/d/yyyy, as Get-HotFix reads it


def test_patches_fall_back_to_wmic_when_the_snapshot_failed():
    host = windows_host({"schema": 1, "hotfixes": {"error": "RPC unavailable"}, "wu_pending": {"error": "x"}})
    host.add_command(["wmic", "qfe", "get", "Description,HotFixID,InstalledOn"],
                     shared("windows/updates/wmic-qfe-win10-1809-utf16le.txt"))
    section = patches_windows(ProbeContext(host))
    assert section["last_update"] == "2019-03-07T00:00:00+00:00"
    assert section["pending"] is None and section["status"] == "partial"
    assert section["reboot_required"] is None



@pytest.mark.parametrize("value,day", [
    ("2023-10-11", dt.date(2023, 10, 11)),                      # our snapshot, schema 2
    ("10/11/2023", dt.date(2023, 10, 11)),                      # the WMI string itself
    ("10/11/2023 00:00:00", dt.date(2023, 10, 11)),             # [string]$_.InstalledOn (schema 1)
    ("10/11/2023 12:00:00 AM", dt.date(2023, 10, 11)),
    ("/Date(1696975200000)/", dt.date(2023, 10, 11)),           # PS 5.1, local midnight in UTC+2
    ("/Date(1697000400000)/", dt.date(2023, 10, 11)),           # PS 5.1, local midnight in UTC-5
    ({"value": "/Date(1696975200000)/", "DateTime": "den 11 oktober 2023 00:00:00"}, dt.date(2023, 10, 11)),
    ({"DateTime": "den 11 oktober 2023 00:00:00"}, None),        # localised prose alone is not read
    ("2023-10-11T00:00:00+02:00", dt.date(2023, 10, 11)),       # PowerShell 7
    ("20231011", dt.date(2023, 10, 11)),
    ("01d9fb714b756000", dt.date(2023, 10, 10)),                # FILETIME hex
    ("13/45/2023", None), ("", None), (None, None), ("garbage", None),
])
def test_qfe_installed_on_every_form(value, day):
    assert parse_qfe_installed_on(value) == day


def test_schema_1_time_part_and_one_unreadable_entry_keep_the_date():
    hotfixes = [{"HotFixID": "KB5031354", "InstalledOn": "10/11/2023 00:00:00"},
                {"HotFixID": "KB5031592", "InstalledOn": "10/12/2023 00:00:00"},
                {"HotFixID": "KB5030000", "InstalledOn": None, "InstalledOnRaw": ""}]
    host = windows_host({"schema": 1, "hotfixes": hotfixes, "wu_pending": []}, registry={
        "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update": {},
        "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing": {}})
    section = patches_windows(ProbeContext(host))
    assert section["last_update"] == "2023-10-12T00:00:00+00:00" and section["status"] == "ok"
    assert "hotfixes.undated: 1/3" in section["reasons"]


def test_snapshot_script_reads_each_hotfix_on_its_own_and_writes_iso_days():
    from auditagent.probes.sources.windows_snapshot import SCRIPT
    block = SCRIPT[SCRIPT.index("Win32_QuickFixEngineering"):SCRIPT.index("hotfixes'] = @{ error")]
    assert "[string]$_.InstalledOn" not in block
    assert "ToString('yyyy-MM-dd', $inv)" in block and "CimInstanceProperties['InstalledOn']" in block
    assert block.count("try {") >= 2  # a throwing InstalledOn loses that entry's date only


# --------------------------------------------------------------------------- public captures
# `wmic qfe get Caption,Description,HotFixID,InstalledOn` as posted; InstalledOn is the WMI
# string (M/d/yyyy in every locale). Newest dates read off each table by hand.

import pytest as _pytest  # noqa: E402

from conftest import OWN_FIXTURES  # noqa: E402

from auditagent.probes.patches.windows import last_installed  # noqa: E402


@_pytest.mark.parametrize("name, count, newest, last_row", [
    ("wmic-qfe-get-caption-description-2025-http-and-https.txt", 6, "2025-03-24",
     {"HotFixID": "KB5053606", "Description": "Security Update", "InstalledOn": "3/24/2025"}),
    ("wmic-qfe-get-2019-2020-indented.txt", 7, "2020-01-03",
     {"HotFixID": "KB4530684", "Description": "Update", "InstalledOn": "1/3/2020"}),
    ("wmic-qfe-get-win7-prompt-echo-hotfix.txt", 3, "2021-01-04",
     {"HotFixID": "KB976902", "Description": "Update", "InstalledOn": "11/21/2010"}),
    ("wmic-qfe-get-2017-snip.txt", 4, "2017-07-15",
     {"HotFixID": "KB4025342", "Description": "Security Update", "InstalledOn": "7/15/2017"}),
    ("wmic-qfe-get-ws2019-one-row-blank-line.txt", 1, "2018-10-29",
     {"HotFixID": "KB4464455", "Description": "Update", "InstalledOn": "10/29/2018"}),
    ("wmic-qfe-get-2013-security-updates.txt", 5, "2013-11-26",
     {"HotFixID": "KB2742614", "Description": "Security Update", "InstalledOn": "11/23/2013"}),
])
def test_public_wmic_qfe_tables(name, count, newest, last_row):
    rows = parse_wmic_qfe((OWN_FIXTURES / "public/windows/hotfixes" / name).read_text(encoding="utf-8"))
    assert len(rows) == count and rows[-1] == last_row
    assert last_installed(rows) == (f"{newest}T00:00:00+00:00", count)


def test_public_wmic_qfe_hotfix_description_and_prompt_lines():
    rows = parse_wmic_qfe((OWN_FIXTURES / "public/windows/hotfixes/wmic-qfe-get-win7-prompt-echo-hotfix.txt")
                          .read_text(encoding="utf-8"))
    # The prompt and the echoed command both name HotFixID, but not as a column of their own.
    assert [r["HotFixID"] for r in rows] == ["KB2534111", "KB2999226", "KB976902"]
    assert rows[0]["Description"] == "Hotfix"


def _pub_qfe(name: str) -> list[dict]:
    return parse_wmic_qfe((OWN_FIXTURES / "public/windows/hotfixes" / name).read_text(encoding="utf-8"))


def test_public_wmic_qfe_full_column_tables():
    rows = _pub_qfe("wmic-qfe-full-columns-server-undated-row.txt")
    assert [(r["HotFixID"], r["InstalledOn"]) for r in rows] == \
        [("KB3199986", "11/21/2016"), ("KB5001078", "3/25/2021"), ("KB4103723", None)]
    # One entry without a date leaves the other two standing.
    assert last_installed(rows) == ("2021-03-25T00:00:00+00:00", 2)
    rows = _pub_qfe("wmic-qfe-list-win10-1903-user-installed.txt")
    assert [r["HotFixID"] for r in rows] == ["KB4552931", "KB4497165", "KB4497727", "KB4537759", "KB4552152",
                                             "KB4540673"]
    assert rows[2] == {"HotFixID": "KB4497727", "Description": "Security Update", "InstalledOn": "4/1/2019"}
    assert last_installed(rows) == ("2020-05-27T00:00:00+00:00", 6)


def test_public_format_table_of_qfe_underline_is_not_a_hotfix():
    rows = _pub_qfe("get-hotfix-ft-autosize-server-en-us.txt")
    assert [r["HotFixID"] for r in rows] == ["KB3199986", "KB4054590", "KB5001078", "KB3200970"]
    assert last_installed(rows) == ("2021-04-13T00:00:00+00:00", 4)
    rows = _pub_qfe("get-ciminstance-qfe-table-en-us-ec2.txt")
    assert [r["HotFixID"] for r in rows][-1] == "KB4013418" and len(rows) == 6  # "..." is no row either
    assert last_installed(rows) == ("2017-06-15T00:00:00+00:00", 6)


def test_public_get_hotfix_in_a_day_first_culture_is_read_in_the_order_its_rows_prove():
    # The display text of PowerShell's DateTime in that console's culture ("27-10-2022",
    # "09-04-2021"). One table is one culture: "27-10-2022" can only be day-first, so
    # "09-04-2021" in the same table is 9 April, not a guess.
    rows = _pub_qfe("get-hotfix-day-first-culture-dd-mm-yyyy.txt")
    assert len(rows) == 8 and rows[1] == {"HotFixID": "KB5000736", "Description": "Update",
                                          "InstalledOn": "2021-04-09", "InstalledOnText": "09-04-2021 00:00:00"}
    assert last_installed(rows) == ("2022-11-18T00:00:00+00:00", 8)


# ------------------------------------------ Get-HotFix | ConvertTo-Json from live hosts (second pass)

@pytest.mark.parametrize("server,count,newest", [("2016", 9, "2026-08-12"), ("2022", 5, "2026-08-12"),
                                                 ("2025", 3, "2026-08-12")])
def test_public_get_hotfix_convertto_json_value_and_datetime_pairs(server, count, newest):
    """Windows PowerShell 5.1 writes InstalledOn (a DateTime ScriptProperty) as
    {"value": "/Date(ms)/", "DateTime": "<display text>"}: the value is read, never the text."""
    import json
    from conftest import OWN_FIXTURES
    path = OWN_FIXTURES / f"public/windows/hotfixes/get-hotfix-convertto-json-server-{server}-cnquery-live.json"
    hotfixes = json.loads(path.read_text())
    assert len(hotfixes) == count and all(set(h["InstalledOn"]) == {"value", "DateTime"} for h in hotfixes)
    assert last_installed(hotfixes) == (f"{newest}T00:00:00+00:00", count)
    host = windows_host({"schema": 1, "hotfixes": hotfixes, "wu_pending": []}, registry={
        "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update": {}})
    out = patches_windows(ProbeContext(host))
    assert out["last_update"] == f"{newest}T00:00:00+00:00" and not any("hotfixes" in r for r in out["reasons"])
    # Oldest entry on the 2016 host: 2016-09-12 (KB3192137), read from /Date(1473638400000)/.
    if server == "2016":
        from auditagent.probes.patches.windows_hotfix import hotfix_date
        assert min(hotfix_date(h) for h in hotfixes) == dt.date(2016, 9, 12)


# ------------------------------------------ client Windows and other cultures (third pass)

def test_public_wmic_qfe_on_windows_11_home_chinese():
    # wmic writes the WMI string (M/d/yyyy) whatever the UI language: a Chinese Windows 11 Home
    # laptop (10.0.22621, "家庭中文版") reads the same as an English server.
    rows = _pub_qfe("wmic-qfe-get-win11-home-zh-cn-22621.txt")
    assert [(r["HotFixID"], r["Description"], r["InstalledOn"]) for r in rows] == [
        ("KB5030651", "Update", "10/12/2023"), ("KB5012170", "Security Update", "12/7/2022"),
        ("KB5031354", "Security Update", "10/12/2023"), ("KB5031592", "Update", "10/12/2023")]
    assert last_installed(rows) == ("2023-10-12T00:00:00+00:00", 4)


def test_public_get_hotfix_year_first_display_dates_are_read():
    # Get-HotFix's display text in a year-first culture: "2023-06-23 12:00:00 AM" (a Windows 10
    # 21H2 client, build 19044) and "2023/11/20 0:00:00" (Japanese). No culture puts the day
    # before the month after a leading year, so these read without a guess.
    rows = _pub_qfe("get-hotfix-win10-19044-yyyy-mm-dd-am-pm-mymachine.txt")
    assert len(rows) == 14 and rows[1] == {"HotFixID": "KB5003791", "Description": "Update", "InstalledOn": "2021-10-06",
                                           "InstalledOnText": "2021-10-06 12:00:00 AM"}
    assert last_installed(rows) == ("2023-07-28T00:00:00+00:00", 14)


def test_public_get_hotfix_row_wider_than_its_column_keeps_each_cell_whole():
    # The poster replaced the computer name by a placeholder wider than the Source column, so
    # every row is shifted right: a column cut at the header's positions would split
    # "KB5032005" and "SYSTEM". A cell now ends where its word ends.
    rows = _pub_qfe("get-hotfix-ja-jp-yyyy-mm-dd-placeholder-host-indented.txt")
    assert len(rows) == 18
    assert rows[0] == {"HotFixID": "KB5032005", "Description": "Update", "InstalledOn": "2023-11-20",
                       "InstalledOnText": "2023/11/20 0:00:00"}
    assert rows[1]["HotFixID"] == "KB5032189" and rows[1]["Description"] == "Security Update"
    assert all(re.fullmatch(r"KB\d{7}", r["HotFixID"]) for r in rows)
    assert last_installed(rows) == ("2023-11-20T00:00:00+00:00", 18)


def test_public_get_hotfix_on_a_french_laptop_day_first_with_slashes():
    # A French Windows 11 Famille laptop: "16/10/2024 00:00:00" is day-first with slashes, the
    # shape the invariant M/d/yyyy also has. Read as 16 October because 16 cannot be a month;
    # the same row with "09/10/2024" proves no order and stays undated, never 10 September.
    text = (OWN_FIXTURES / "public/windows/hotfixes/get-hotfix-fr-fr-win11-famille-laptop-dd-mm-yyyy-one-row.txt") \
        .read_text(encoding="utf-8")
    (row,) = parse_wmic_qfe(text)
    assert row == {"HotFixID": "KB5044285", "Description": "Security Update", "InstalledOn": "2024-10-16",
                   "InstalledOnText": "16/10/2024 00:00:00"}
    (row,) = parse_wmic_qfe(text.replace("16/10/2024", "09/10/2024"))
    assert row["InstalledOn"] is None and last_installed([row]) == (None, 0)
    # wmic's own column is the WMI string, M/d/yyyy in every locale, and stays read as such.
    (row,) = parse_wmic_qfe("HotFixID   InstalledOn\nKB5031592  10/9/2023\n")
    assert last_installed([row]) == ("2023-10-09T00:00:00+00:00", 1)
