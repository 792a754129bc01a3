"""The digest in words: Swedish, Danish and English (the subscriber's choice).

Only this catalogue's own sentences are format strings; what comes from devices (host
names) and units is filled in as values, never interpreted.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from server.notify.events import BELOW_TARGET, EXCEPTION_EXPIRING, NOT_READY, SILENT

LANGS = ("sv", "da", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "subject": "auditagent: dagens sammanfattning för {unit}",
        "intro": "Sammanfattning för {unit} ({day}). Beredskap nu: {pct}.",
        NOT_READY: "{count} dator(er) är inte längre redo:",
        SILENT: "{count} dator(er) har slutat rapportera:",
        EXCEPTION_EXPIRING: "{count} undantag upphör inom {days} dagar:",
        BELOW_TARGET: "Enhetens beredskap {pct} är under målet {target} %.",
        "exception_line": "{check} på {where}, upphör {until}",
        "state.ready": "redo", "state.not_ready": "inte redo", "state.due": "åtgärd krävs",
        "state.stale": "inaktuell", "state.never_reported": "aldrig rapporterat",
        "due_until": "åtgärda senast {until}",
        "more": "… och {n} till.",
        "footer": "Öppna instrumentpanelen för detaljer. Du får detta eftersom du prenumererar på {unit}.",
    },
    "da": {
        "subject": "auditagent: dagens oversigt for {unit}",
        "intro": "Oversigt for {unit} ({day}). Parathed nu: {pct}.",
        NOT_READY: "{count} computer(e) er ikke længere klar:",
        SILENT: "{count} computer(e) er holdt op med at rapportere:",
        EXCEPTION_EXPIRING: "{count} undtagelse(r) udløber inden for {days} dage:",
        BELOW_TARGET: "Enhedens parathed {pct} er under målet på {target} %.",
        "exception_line": "{check} på {where}, udløber {until}",
        "state.ready": "klar", "state.not_ready": "ikke klar", "state.due": "handling kræves",
        "state.stale": "forældet", "state.never_reported": "aldrig rapporteret",
        "due_until": "udbedres senest {until}",
        "more": "… og {n} mere.",
        "footer": "Åbn dashboardet for detaljer. Du får dette, fordi du abonnerer på {unit}.",
    },
    "en": {
        "subject": "auditagent: today's digest for {unit}",
        "intro": "Digest for {unit} ({day}). Readiness now: {pct}.",
        NOT_READY: "{count} device(s) are no longer ready:",
        SILENT: "{count} device(s) stopped reporting:",
        EXCEPTION_EXPIRING: "{count} exception(s) end within {days} days:",
        BELOW_TARGET: "The unit's readiness {pct} is below its target of {target} %.",
        "exception_line": "{check} on {where}, ends {until}",
        "state.ready": "ready", "state.not_ready": "not ready", "state.due": "due",
        "state.stale": "stale", "state.never_reported": "never reported",
        "due_until": "fix by {until}",
        "more": "… and {n} more.",
        "footer": "Open the dashboard for details. You get this because you subscribe to {unit}.",
    },
}


def _pct(value: float | None, lang: str) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return (text.replace(".", ",") if lang in ("sv", "da") else text) + " %"


def render_text(digest: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of a digest in its language."""
    lang = digest.get("lang") if digest.get("lang") in LANGS else "en"
    m = MESSAGES[lang]  # type: ignore[index]
    unit = digest["unit"]
    lines = [m["intro"].format(unit=unit, day=digest["day"], pct=_pct(digest.get("ready_pct"), lang)), ""]
    ev = digest["events"]
    for event in (NOT_READY, SILENT):
        if event in ev:
            lines.append(m[event].format(count=ev[event]["count"]))
            for d in ev[event]["devices"]:
                due = ""
                if d.get("due_until"):  # due: the grace deadline, in the same form as an exception's end
                    due = ", " + m["due_until"].format(
                        until=dt.datetime.fromisoformat(d["due_until"]).strftime("%Y-%m-%d %H:%M UTC"))
                lines.append(f"  - {d['hostname']} ({d['unit']}): {m.get('state.' + d['state'], d['state'])}{due}")
            if ev[event]["count"] > len(ev[event]["devices"]):
                lines.append("  " + m["more"].format(n=ev[event]["count"] - len(ev[event]["devices"])))
            lines.append("")
    if EXCEPTION_EXPIRING in ev:
        e = ev[EXCEPTION_EXPIRING]
        lines.append(m[EXCEPTION_EXPIRING].format(count=e["count"], days=e["days"]))
        for x in e["exceptions"]:
            until = dt.datetime.fromisoformat(x["expires_at"]).strftime("%Y-%m-%d %H:%M UTC")
            lines.append("  - " + m["exception_line"].format(check=x["check_id"], where=x["hostname"] or x["unit"],
                                                             until=until))
        lines.append("")
    if BELOW_TARGET in ev:
        b = ev[BELOW_TARGET]
        lines += [m[BELOW_TARGET].format(pct=_pct(b["ready_pct"], lang), target=b["target_pct"]), ""]
    lines.append(m["footer"].format(unit=unit))
    return m["subject"].format(unit=unit), "\n".join(lines) + "\n"
