"""The digest in words, in the subscriber's language (sv, da, en): one builder for every
language, with the dashboard's catalogue and Translator (:mod:`server.i18n_web`: the
``digest.*`` sentences, the state names, numbers and times as the dashboard writes them;
counts in their one/other form).

Only the catalogue's own sentences are templates; what comes from devices (host names)
and units is filled in as values, never interpreted.
"""
from __future__ import annotations

from typing import Any

from server.i18n_web import LANGS, Translator
from server.notify.events import BELOW_TARGET, EXCEPTION_EXPIRING, NOT_READY, SILENT

__all__ = ["LANGS", "render_text"]


def render_text(digest: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of a digest in its language."""
    # Expiry times in UTC, named: the worker does not know the reader's zone.
    t = Translator(digest.get("lang") if digest.get("lang") in LANGS else "en", "UTC")
    unit = digest["unit"]
    lines = [t("digest.intro", unit=unit, day=digest["day"], pct=t.pct(digest.get("ready_pct"))), ""]
    ev = digest["events"]
    for event in (NOT_READY, SILENT):
        if event in ev:
            lines.append(t(f"digest.{event}", count=ev[event]["count"]))
            for d in ev[event]["devices"]:
                state = t(f"state.{d['state']}").lower() if t.has(f"state.{d['state']}") else d["state"]
                # due: the grace deadline, written as an exception's end is
                due = ", " + t("due_until", when=t.when(d["due_until"])) if d.get("due_until") else ""
                lines.append(f"  - {d['hostname']} ({d['unit']}): {state}{due}")
            if ev[event]["count"] > len(ev[event]["devices"]):
                lines.append("  " + t("digest.more", n=ev[event]["count"] - len(ev[event]["devices"])))
            lines.append("")
    if EXCEPTION_EXPIRING in ev:
        e = ev[EXCEPTION_EXPIRING]
        lines.append(t(f"digest.{EXCEPTION_EXPIRING}", count=e["count"], days=e["days"]))
        for x in e["exceptions"]:
            lines.append("  - " + t("digest.exception_line", check=x["check_id"], where=x["hostname"] or x["unit"],
                                    until=t.when(x["expires_at"])))
        lines.append("")
    if BELOW_TARGET in ev:
        b = ev[BELOW_TARGET]
        lines += [t("digest.below_target", pct=t.pct(b["ready_pct"]), target=b["target_pct"]), ""]
    lines.append(t("digest.footer", unit=unit))
    return t("digest.subject", unit=unit), "\n".join(lines) + "\n"
