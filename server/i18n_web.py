"""The dashboard's words in Swedish and English, and the choice of language.

Language: ``?lang=sv|en`` (remembered in a cookie), else the signed-in user's
preference, else the browser's Accept-Language, else Swedish. Check titles and the
agent's result messages come from the policy and the agent's own catalogs
(:mod:`auditagent.i18n`), so staff and security officers read the same sentences.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from auditagent.textsafe import fill

LANGS = ("sv", "en")
DEFAULT = "sv"

MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "app": "Beredskap för distansarbete",
        "app.short": "auditagent",
        "nav.overview": "Översikt",
        "nav.exceptions": "Undantag",
        "nav.api": "API",
        "logout": "Logga ut",
        "signed_in_as": "Inloggad som {user} ({role})",
        "role.admin": "administratör",
        "role.security_officer": "säkerhetssamordnare",
        "role.unit_manager": "enhetschef",
        "login.title": "Logga in",
        "login.username": "Användarnamn",
        "login.password": "Lösenord",
        "login.submit": "Logga in",
        "login.failed": "Fel användarnamn eller lösenord.",
        "login.throttled": "För många misslyckade inloggningar härifrån. Försök igen om {seconds} sekunder.",
        "login.locked": "Kontot är tillfälligt spärrat efter för många misslyckade försök. Försök igen senare.",
        "login.expired": "Du har loggats ut. Logga in igen.",
        "csrf.failed": "Formuläret hade gått ut eller kom inte från den här sidan. Ladda om sidan och försök igen.",
        "forbidden": "Du har inte behörighet till den här sidan.",
        "not_found": "Sidan finns inte.",
        "overview.title": "Beredskap per enhet",
        "overview.lead": "Andel enheter som uppfyller alla obligatoriska kontroller (med beviljade undantag).",
        "unit": "Enhet",
        "units": "Enheter",
        "devices": "Datorer",
        "readiness": "Beredskap",
        "distribution": "Fördelning",
        "outdated_agents": "Äldre agentversion",
        "outdated_agents.help": "datorer kör en äldre version av agenten",
        "state.ready": "Redo",
        "state.not_ready": "Inte redo",
        "state.stale": "Inaktuell",
        "state.never_reported": "Aldrig rapporterat",
        "state.unknown": "Okänd",
        "state.any": "Alla",
        "state.stale.help": "ingen rapport på över {hours} timmar",
        "status": "Status",
        "status.pass": "Godkänd",
        "status.fail": "Underkänd",
        "status.unknown": "Okänd",
        "status.not_applicable": "Ej tillämplig",
        "covered": "täcks av undantag",
        "covered.long": "✔ täcks av undantag till {until}, beviljat av {by}, eftersom: {why}",
        "summary": "Sammanfattning",
        "children": "Underenheter",
        "failing_checks": "Kontroller som inte uppfylls",
        "failing_checks.none": "Inga obligatoriska kontroller brister.",
        "check": "Kontroll",
        "check.any": "Alla kontroller",
        "severity.required": "obligatorisk",
        "severity.recommended": "rekommenderad",
        "device_count": "Antal datorer",
        "stale_longest": "Längst utan rapport",
        "stale_longest.none": "Alla datorer har rapporterat det senaste dygnet.",
        "last_report": "Senaste rapport",
        "never": "aldrig",
        "hostname": "Datornamn",
        "os": "Operativsystem",
        "os.any": "Alla",
        "platform": "Plattform",
        "agent": "Agent",
        "subunit": "Underenhet",
        "subunit.any": "Hela enheten",
        "state": "Läge",
        "filter": "Filtrera",
        "filter.reset": "Rensa",
        "page": "Sida {page} av {pages}",
        "prev": "← Föregående",
        "next": "Nästa →",
        "no_devices": "Inga datorer matchar.",
        "export_csv": "Exportera CSV",
        "json": "JSON",
        "trend": "Beredskap de senaste {days} dagarna",
        "trend.empty": "Ingen historik ännu.",
        "trend.alt": "Linjediagram: andel redo datorer per dag, från {first} % till {last} %.",
        "device": "Dator",
        "device.id": "Dator-id",
        "serial": "Serienummer",
        "enrolled": "Registrerad",
        "results": "Senaste resultat",
        "results.none": "Datorn har inte skickat någon rapport ännu.",
        "messages": "Meddelanden",
        "evidence": "Underlag",
        "verdict": "Bedömning",
        "verdict.agent": "enligt agenten",
        "timeline": "Rapporter",
        "timeline.lead": "Varje rapport är signerad av datorns egen nyckel (DSSE, Ed25519) och kan kontrolleras "
                         "utan insamlingsservern.",
        "download_report": "Ladda ned signerad rapport",
        "public_key": "Datorns publika nyckel",
        "public_key.download": "Ladda ned (PEM)",
        "keyid": "Nyckel-id",
        "sequence": "Nr",
        "generated": "Skapad",
        "received": "Mottagen",
        "policy": "Policy",
        "exceptions.title": "Undantag",
        "exceptions.lead": "Ett undantag gör att en kontroll räknas som uppfylld för en dator eller en hel enhet "
                           "fram till ett visst datum.",
        "exceptions.none": "Inga undantag.",
        "exceptions.grant": "Bevilja undantag",
        "exceptions.granted": "Undantaget är beviljat.",
        "exceptions.revoked": "Undantaget är återkallat.",
        "exceptions.only_officers": "Bara säkerhetssamordnare och administratörer kan bevilja och återkalla undantag.",
        "exceptions.active": "Gällande",
        "exceptions.inactive": "Utgångna och återkallade",
        "exceptions.show_inactive": "Visa även utgångna och återkallade",
        "target": "Gäller",
        "target.device": "Dator (id eller namn)",
        "target.unit": "Enhet",
        "target.choose_unit": "— välj enhet —",
        "or": "eller",
        "expires": "Gäller till",
        "justification": "Motivering",
        "granted_by": "Beviljat av",
        "granted_at": "Beviljat",
        "revoke": "Återkalla",
        "revoke.reason": "Skäl",
        "revoked": "Återkallat",
        "expired": "Utgånget",
        "grant.for_check": "Bevilja undantag för den här kontrollen",
        "error.generic": "Det gick inte: {message}",
        "footer": "Uppgifterna kommer från signerade rapporter från datorerna. Tider i UTC.",
        "lang.switch": "Språk",
        "total": "Totalt",
        "all_units": "Alla enheter",
    },
    "en": {
        "app": "Remote-work readiness",
        "app.short": "auditagent",
        "nav.overview": "Overview",
        "nav.exceptions": "Exceptions",
        "nav.api": "API",
        "logout": "Log out",
        "signed_in_as": "Signed in as {user} ({role})",
        "role.admin": "administrator",
        "role.security_officer": "security officer",
        "role.unit_manager": "unit manager",
        "login.title": "Log in",
        "login.username": "User name",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong user name or password.",
        "login.throttled": "Too many failed log-ins from here. Try again in {seconds} seconds.",
        "login.locked": "The account is locked for a while after too many failed attempts. Try again later.",
        "login.expired": "You have been logged out. Please log in again.",
        "csrf.failed": "The form had expired or did not come from this page. Reload the page and try again.",
        "forbidden": "You do not have access to this page.",
        "not_found": "No such page.",
        "overview.title": "Readiness per unit",
        "overview.lead": "Share of devices that meet every required check (with granted exceptions).",
        "unit": "Unit",
        "units": "Units",
        "devices": "Devices",
        "readiness": "Readiness",
        "distribution": "Distribution",
        "outdated_agents": "Outdated agent",
        "outdated_agents.help": "devices run an older agent version",
        "state.ready": "Ready",
        "state.not_ready": "Not ready",
        "state.stale": "Stale",
        "state.never_reported": "Never reported",
        "state.unknown": "Unknown",
        "state.any": "Any",
        "state.stale.help": "no report for more than {hours} hours",
        "status": "Status",
        "status.pass": "Pass",
        "status.fail": "Fail",
        "status.unknown": "Unknown",
        "status.not_applicable": "Not applicable",
        "covered": "covered by exception",
        "covered.long": "✔ covered by exception until {until}, by {by}, because: {why}",
        "summary": "Summary",
        "children": "Sub-units",
        "failing_checks": "Failing checks",
        "failing_checks.none": "No required check is failing.",
        "check": "Check",
        "check.any": "All checks",
        "severity.required": "required",
        "severity.recommended": "recommended",
        "device_count": "Devices",
        "stale_longest": "Longest without a report",
        "stale_longest.none": "Every device has reported within the last day.",
        "last_report": "Last report",
        "never": "never",
        "hostname": "Host name",
        "os": "Operating system",
        "os.any": "Any",
        "platform": "Platform",
        "agent": "Agent",
        "subunit": "Sub-unit",
        "subunit.any": "Whole unit",
        "state": "State",
        "filter": "Filter",
        "filter.reset": "Clear",
        "page": "Page {page} of {pages}",
        "prev": "← Previous",
        "next": "Next →",
        "no_devices": "No devices match.",
        "export_csv": "Export CSV",
        "json": "JSON",
        "trend": "Readiness over the last {days} days",
        "trend.empty": "No history yet.",
        "trend.alt": "Line chart: share of ready devices per day, from {first} % to {last} %.",
        "device": "Device",
        "device.id": "Device id",
        "serial": "Serial number",
        "enrolled": "Enrolled",
        "results": "Latest results",
        "results.none": "This device has not sent a report yet.",
        "messages": "Messages",
        "evidence": "Evidence",
        "verdict": "Verdict",
        "verdict.agent": "according to the agent",
        "timeline": "Reports",
        "timeline.lead": "Each report is signed with the device's own key (DSSE, Ed25519) and can be verified "
                         "without the collector.",
        "download_report": "Download signed report",
        "public_key": "Device public key",
        "public_key.download": "Download (PEM)",
        "keyid": "Key id",
        "sequence": "No.",
        "generated": "Generated",
        "received": "Received",
        "policy": "Policy",
        "exceptions.title": "Exceptions",
        "exceptions.lead": "An exception counts a check as met for one device or a whole unit until a given date.",
        "exceptions.none": "No exceptions.",
        "exceptions.grant": "Grant an exception",
        "exceptions.granted": "The exception was granted.",
        "exceptions.revoked": "The exception was revoked.",
        "exceptions.only_officers": "Only security officers and administrators can grant and revoke exceptions.",
        "exceptions.active": "In force",
        "exceptions.inactive": "Expired and revoked",
        "exceptions.show_inactive": "Also show expired and revoked",
        "target": "Applies to",
        "target.device": "Device (id or host name)",
        "target.unit": "Unit",
        "target.choose_unit": "— choose a unit —",
        "or": "or",
        "expires": "Valid until",
        "justification": "Justification",
        "granted_by": "Granted by",
        "granted_at": "Granted",
        "revoke": "Revoke",
        "revoke.reason": "Reason",
        "revoked": "Revoked",
        "expired": "Expired",
        "grant.for_check": "Grant an exception for this check",
        "error.generic": "That did not work: {message}",
        "footer": "The figures come from the devices' signed reports. Times in UTC.",
        "lang.switch": "Language",
        "total": "Total",
        "all_units": "All units",
    },
}


# Keys of the readiness views and exports, in every language the dashboard speaks (the
# Danish catalogue may be completed elsewhere: these are merged into it, not replacing it).
READINESS_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "failing.stale": "Inaktuella (räknas inte)",
        "blocking_check": "Vanligaste hindret",
        "target.below": "under målet",
        "target.units_below": "enheter under målet {target}",
        "sort.tree": "I trädordning",
        "sort.worst_first": "Sämst först",
        "exceptions.granted.one": "Undantag beviljat: {check} på {target}, gäller till och med {until}.",
        "exceptions.ended": "Återkallade och utgångna",
        "exceptions.ended.none": "Inga återkallade eller utgångna undantag.",
        "target.device.named": "Datorn {hostname} (id {id})",
        "trend.rule": "Varje dag visar hur datorerna stod vid dagens slut (UTC), bedömda på sin senaste rapport före dess: redo, inte redo, inaktuell (senaste rapporten äldre än enhetens maxålder, till exempel en dator som varit avstängd under helgen) eller aldrig rapporterat. Dagens punkt är just nu och stämmer med siffrorna ovan.",
        "trend.bands.alt": "Staplat diagram: datorernas status per dag. Nu: {ready} redo, {not_ready} inte redo, {stale} inaktuella och {never} som aldrig rapporterat, av {total}.",
        "export_xlsx": "Exportera Excel (XLSX)",
        "export.col.device_id": "Dator-id",
        "export.col.hostname": "Datornamn",
        "export.col.unit": "Enhet",
        "export.col.state": "Status",
        "export.col.last_seen": "Senaste rapport (UTC)",
        "export.col.received_at": "Mottagen (UTC)",
        "export.col.failing_checks": "Kontroller som inte uppfylls",
        "export.col.excepted_checks": "Kontroller med undantag",
        "export.col.platform": "Plattform",
        "export.col.os": "Operativsystem",
        "export.col.agent_version": "Agentversion",
        "export.col.agent_outdated": "Äldre agentversion",
        "export.forbidden": "Bara säkerhetssamordnare och administratörer får exportera.",
        "yes": "ja",
        "no": "nej",
    },
    "da": {
        "failing.stale": "Forældede (tælles ikke med)",
        "blocking_check": "Hyppigste hindring",
        "target.below": "under målet",
        "target.units_below": "enheder under målet {target}",
        "sort.tree": "I træets rækkefølge",
        "sort.worst_first": "Dårligst først",
        "exceptions.granted.one": "Undtagelse givet: {check} på {target}, gælder til og med {until}.",
        "exceptions.ended": "Tilbagekaldte og udløbne",
        "exceptions.ended.none": "Ingen tilbagekaldte eller udløbne undtagelser.",
        "target.device.named": "Computeren {hostname} (id {id})",
        "trend.rule": "Hver dag viser, hvordan computerne stod ved dagens slutning (UTC), vurderet ud fra deres seneste rapport inden da: klar, ikke klar, forældet (den seneste rapport er ældre end enhedens maksimale alder, fx en computer der har været slukket i weekenden) eller aldrig rapporteret. Dagens punkt er lige nu og svarer til tallene ovenfor.",
        "trend.bands.alt": "Stablet diagram: computernes status pr. dag. Nu: {ready} klar, {not_ready} ikke klar, {stale} forældede og {never} der aldrig har rapporteret, ud af {total}.",
        "trend": "Parathed de seneste {days} dage",
        "export_csv": "Eksportér CSV",
        "export_xlsx": "Eksportér Excel (XLSX)",
        "export.col.device_id": "Computer-id",
        "export.col.hostname": "Computernavn",
        "export.col.unit": "Enhed",
        "export.col.state": "Status",
        "export.col.last_seen": "Seneste rapport (UTC)",
        "export.col.received_at": "Modtaget (UTC)",
        "export.col.failing_checks": "Kontroller der ikke er opfyldt",
        "export.col.excepted_checks": "Kontroller med undtagelse",
        "export.col.platform": "Platform",
        "export.col.os": "Styresystem",
        "export.col.agent_version": "Agentversion",
        "export.col.agent_outdated": "Ældre agentversion",
        "export.forbidden": "Kun sikkerhedskoordinatorer og administratorer må eksportere.",
        "state.ready": "Klar",
        "state.not_ready": "Ikke klar",
        "state.stale": "Forældet",
        "state.never_reported": "Aldrig rapporteret",
        "yes": "ja",
        "no": "nej",
    },
    "en": {
        "failing.stale": "Stale (not counted)",
        "blocking_check": "Most common blocker",
        "target.below": "below target",
        "target.units_below": "units below the {target} target",
        "sort.tree": "Tree order",
        "sort.worst_first": "Worst first",
        "exceptions.granted.one": "Exception granted: {check} on {target}, valid through {until}.",
        "exceptions.ended": "Revoked and expired",
        "exceptions.ended.none": "No revoked or expired exceptions.",
        "target.device.named": "The device {hostname} (id {id})",
        "trend.rule": "Each day shows the devices as they stood at the end of that day (UTC), judged by their latest report before then: ready, not ready, stale (the latest report older than the unit's maximum age, such as a laptop switched off over the weekend) or never reported. Today's point is now and matches the figures above.",
        "trend.bands.alt": "Stacked chart: the devices' state per day. Now: {ready} ready, {not_ready} not ready, {stale} stale and {never} never reported, of {total}.",
        "export_xlsx": "Export Excel (XLSX)",
        "export.col.device_id": "Device id",
        "export.col.hostname": "Host name",
        "export.col.unit": "Unit",
        "export.col.state": "State",
        "export.col.last_seen": "Last report (UTC)",
        "export.col.received_at": "Received (UTC)",
        "export.col.failing_checks": "Checks not met",
        "export.col.excepted_checks": "Checks with an exception",
        "export.col.platform": "Platform",
        "export.col.os": "Operating system",
        "export.col.agent_version": "Agent version",
        "export.col.agent_outdated": "Older agent version",
        "export.forbidden": "Only security officers and administrators may export.",
        "yes": "yes",
        "no": "no",
    },
}
for _lang, _msgs in READINESS_MESSAGES.items():
    _catalogue = MESSAGES.setdefault(_lang, {})
    for _key, _text in _msgs.items():
        _catalogue.setdefault(_key, _text)


class Translator:
    """``t("key", name=value)`` in one language; unknown keys fall back to English, then the key."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT

    def __call__(self, key: str, **args: Any) -> str:
        text = MESSAGES[self.lang].get(key) or MESSAGES["en"].get(key)
        if text is None:
            return key  # an unknown key is text, never a template
        return fill(text, args)

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        text = f"{value:,.{digits}f}"
        if self.lang == "sv":  # 12 345,6
            text = text.replace(",", "\u00a0").replace(".", ",")
        return text

    def when(self, value: Any, with_time: bool = True) -> str:
        """An ISO/`datetime` time as 'YYYY-MM-DD HH:MM' (UTC); '–' for none."""
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.timezone.utc)
            return value.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)

    def age(self, hours: float | None) -> str:
        """'3 d 4 h' / '5 h' / '12 min'."""
        if hours is None:
            return "–"
        if hours < 1:
            return f"{int(hours * 60)} min"
        if hours < 48:
            return f"{int(hours)} h"
        d = int(hours // 24)
        return f"{d} d {int(hours - d * 24)} h"


def parse_accept_language(header: str | None) -> str | None:
    """The first of sv/en in an Accept-Language header, by quality; None if neither."""
    if not header:
        return None
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(header.split(",")):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            b = b.strip()
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        code = tag.split("-")[0]
        if code in ("nb", "nn", "no", "da"):
            code = "sv"  # Scandinavian readers: Swedish rather than English
        if code in LANGS and q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, code)
    return best[2] if best else None


def choose_language(query: str | None, cookie: str | None, user_pref: str | None, accept: str | None) -> str:
    for cand in (query, cookie, user_pref):
        if cand in LANGS:
            return cand  # type: ignore[return-value]
    return parse_accept_language(accept) or DEFAULT
