"""The dashboard's words in Swedish, Danish and English, the choice of language, and
how numbers, times and dates are written for a reader.

Language: ``?lang=sv|da|en`` (the switch in the page header, remembered in a cookie),
else the signed-in user's setting, else the browser's Accept-Language (Norwegian
readers get Danish, the closer written language), else Swedish. Check titles and the
agent's result messages come from the policy and the agent's own catalogs
(:mod:`auditagent.i18n`), so staff and security officers read the same sentences.

Times: stored in UTC, shown in the organisation's time zone with the zone's name
(``2026-03-29 14:05 CEST``) by :meth:`Translator.when`, the one helper every template
uses; a date that is a date (an exception's last day, a trend day) by
:meth:`Translator.day` / :meth:`Translator.until`, in that zone.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import Markup, escape

from auditagent.i18n.plural import count_in, plural_key
from auditagent.textsafe import fill, neutralise
from server.local_time import DEFAULT_ZONE, time_zone

LANGS = ("sv", "da", "en")
DEFAULT = "sv"
LANG_NAMES = {"sv": "Svenska", "da": "Dansk", "en": "English"}
# Accept-Language codes read as one of ours: Norwegian (bokmål, nynorsk) as Danish.
ALIASES = {"nb": "da", "nn": "da", "no": "da"}

MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "app": "Beredskap för distansarbete",
        "app.short": "auditagent",
        "skip": "Hoppa till innehållet",
        "nav.overview": "Översikt",
        "nav.exceptions": "Undantag",
        "nav.audit": "Händelselogg",
        "nav.api": "API",
        "nav.main": "Huvudmeny",
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
        "login.sso": "Logga in med {provider}",
        "login.or_local": "Eller med ett lokalt konto (nödåtkomst):",
        "login.local_disabled": "Inloggning med lösenord är avstängd. Använd enkel inloggning.",
        "login.signed_out": "Du är utloggad från auditagent.",
        "login.sso_logout": "Logga ut från {provider} också",
        "sso.continue": "Inloggad – fortsätt",
        "sso.refused.title": "Inloggningen nekades",
        "sso.try_again": "Försök igen",
        "oidc.unmapped": "Ditt konto finns hos identitetsleverantören men tillhör ingen grupp som ger åtkomst till auditagent. Be IT lägga till dig i rätt grupp.",
        "oidc.group_overage": "Du är med i för många grupper för att de ska skickas vid inloggningen. IT behöver ge åtkomst via approller eller grupper som tilldelats appen.",
        "oidc.expired": "Inloggningen hade gått ut eller började i en annan webbläsare. Försök igen.",
        "oidc.bad_token": "Svaret från identitetsleverantören kunde inte verifieras.",
        "oidc.provider_error": "Identitetsleverantören kunde inte nås eller svarade med ett fel. Försök igen senare.",
        "oidc.provider_refused": "Identitetsleverantören avbröt inloggningen.",
        "oidc.unit_missing": "Enheten som din grupp ger åtkomst till finns inte i auditagent ({detail}). Kontakta IT.",
        "oidc.name_taken": "Användarnamnet {detail} tillhör redan ett lokalt konto. Kontakta IT.",
        "oidc.disabled": "Ditt konto i auditagent är avstängt.",
        "csrf.failed": "Formuläret hade gått ut eller kom inte från den här sidan. Ladda om sidan och försök igen.",
        "forbidden": "Du har inte behörighet till den här sidan.",
        "not_found": "Sidan finns inte.",
        "overview.title": "Beredskap per enhet",
        "overview.lead": "Andel datorer som uppfyller alla obligatoriska kontroller. Beviljade undantag räknas "
                         "som uppfyllda.",
        "unit": "Enhet",
        "units": "Enheter",
        "devices": "Datorer",
        "devices.count.one": "{count} dator",
        "devices.count.other": "{count} datorer",
        "readiness": "Beredskap",
        "readiness.total": "Beredskap totalt",
        "distribution": "Fördelning",
        "outdated_agents": "Äldre agent",
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
        "covered.long": "✔ täcks av ett undantag till och med {until}, beviljat av {by} med motiveringen: {why}",
        "summary": "Sammanfattning",
        "children": "Underenheter",
        "failing_checks": "Kontroller som inte uppfylls",
        "failing_checks.none": "Alla obligatoriska kontroller uppfylls.",
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
        "state": "Status",
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
        "timeline.lead": "Varje rapport är signerad med datorns egen nyckel (DSSE, Ed25519) och kan kontrolleras "
                         "utan insamlingsservern.",
        "download_report": "Ladda ned signerad rapport",
        "verify_offline": "Kontrollera den offline, med den publika nyckeln nedan:",
        "public_key": "Datorns publika nyckel",
        "public_key.download": "Ladda ned (PEM)",
        "keyid": "Nyckel-id",
        "sequence": "Nr",
        "generated": "Skapad",
        "received": "Mottagen",
        "policy": "Policy",
        "actions": "Åtgärd",
        "exceptions.title": "Undantag",
        "exceptions.lead": "Ett undantag gör att en kontroll räknas som uppfylld för en dator eller en hel enhet "
                           "till och med ett visst datum.",
        "exceptions.none": "Inga undantag.",
        "exceptions.grant": "Bevilja undantag",
        "exceptions.granted": "Undantaget är beviljat.",
        "exceptions.revoked": "Undantaget är återkallat.",
        "exceptions.only_officers": "Bara säkerhetssamordnare kan bevilja och återkalla undantag.",
        "exceptions.active": "Gällande",
        "exceptions.inactive": "Utgångna och återkallade",
        "exceptions.show_inactive": "Visa även utgångna och återkallade",
        "target": "Gäller",
        "target.device": "Dator (id eller datornamn)",
        "target.unit": "Enhet",
        "target.choose_unit": "– välj enhet –",
        "or": "eller",
        "expires": "Gäller till och med",
        "justification": "Motivering",
        "granted_by": "Beviljat av",
        "granted_at": "Beviljat",
        "revoke": "Återkalla",
        "revoke.reason": "Skäl",
        "revoked": "Återkallat",
        "expired": "Utgånget",
        "grant.for_check": "Bevilja undantag för den här kontrollen",
        "error.generic": "Det gick inte: {message}",
        "error.already_revoked": "Undantaget är redan återkallat.",
        "error.device_not_found": "Ingen dator i dina enheter har det id:t eller datornamnet.",
        "error.device_ambiguous": "Flera datorer har det datornamnet. Ange datorns id i stället.",
        "invalid.check_id": "Välj en kontroll i listan.",
        "invalid.target": "Ange antingen en dator eller en enhet, inte båda.",
        "invalid.justification": "Skriv en motivering på minst 10 och högst 4 000 tecken.",
        "invalid.expires_at": "Välj ett slutdatum från och med i dag och högst {days} dagar framåt.",
        "invalid.reason": "Skriv varför undantaget återkallas (högst 4 000 tecken).",
        "invalid.since": "Ange datum som ÅÅÅÅ-MM-DD.",
        "footer": "Uppgifterna kommer från datorernas signerade rapporter.",
        "footer.zone": "Tider visas i tidszonen {zone}.",
        "lang.switch": "Språk",
        "total": "Totalt",
        "all_units": "Alla enheter",
        "audit.title": "Händelselogg",
        "audit.lead": "Vem som har beviljat och återkallat undantag, lagt till användare och enheter, skapat "
                      "registreringsnycklar, registrerat och spärrat datorer och bytt policy.",
        "audit.only_officers": "Bara säkerhetssamordnare och administratörer kan läsa händelseloggen.",
        "audit.none": "Inga händelser matchar.",
        "audit.at": "Tid",
        "audit.who": "Vem",
        "audit.action": "Händelse",
        "audit.object": "Gäller",
        "audit.action_code": "Händelsekod",
        "audit.detail": "Detaljer",
        "audit.system": "systemet",
        "audit.from": "Från och med",
        "audit.to": "Till och med",
        "audit.more.one": "Visar den senaste händelsen. Begränsa urvalet för att se äldre.",
        "audit.more.other": "Visar de {n} senaste händelserna. Begränsa urvalet för att se äldre.",
        "action.exception.grant": "Undantag beviljat",
        "action.exception.revoke": "Undantag återkallat",
        "action.user.create": "Användare tillagd",
        "action.user.disable": "Användare inaktiverad",
        "action.user.locked": "Konto spärrat efter misslyckade inloggningar",
        "action.unit.create": "Enhet skapad",
        "action.token.create": "Registreringsnyckel skapad",
        "action.device.enroll": "Dator registrerad",
        "action.device.revoke": "Dator spärrad",
        "action.policy.set": "Policy bytt",
        "report.link": "Rapport till nämnden",
        "report.title": "Beredskap för distansarbete: {unit}",
        "report.period": "Period {start} – {end}",
        "report.period.label": "Period",
        "report.days": "{days} dagar",
        "report.print": "Skriv ut eller spara som PDF",
        "report.lead": "Rapport om hur många av enhetens datorer som är redo för arbete med sekretessbelagda "
                       "uppgifter utanför kontoret.",
        "report.now": "Läget {when}",
        "report.trend": "Utvecklingen under perioden",
        "report.trend.change": "Från {first} den {since} till {last} ({change} procentenheter).",
        "report.trend.flat": "Oförändrat på {last} sedan {since}.",
        "report.trend.first": "Ingen tidigare siffra att jämföra med: ingen av enhetens datorer hade rapporterat "
                              "före {since} (beredskap {first} den dagen).",
        "report.trend.none": "Ingen av enhetens datorer har rapporterat ännu, så det finns ingen siffra att "
                             "jämföra.",
        "report.trend.table": "Beredskap per vecka",
        "report.week": "Vecka som slutar",
        "report.blocking": "Kontroller som hindrar flest datorer",
        "report.exceptions": "Gällande undantag",
        "report.silent": "Datorer som varit tysta längst",
        "report.verify.title": "Så kan en granskare kontrollera uppgifterna",
        "report.verify": "Varje siffra bygger på rapporter som datorerna själva har signerat (DSSE-kuvert med "
                         "Ed25519, in-toto-format). En granskare kan ladda ned varje rapport och datorns publika "
                         "nyckel från datorns sida i verktyget, eller via API:t (/api/v1/devices/ID/reports), "
                         "och kontrollera signaturen med ett DSSE-verktyg, till exempel securesystemslib, utan "
                         "att lita på insamlingsservern.",
        "report.generated": "Utskriven {when} av {user}.",
    },
    "da": {
        "app": "Parathed til hjemmearbejde",
        "app.short": "auditagent",
        "skip": "Spring til indholdet",
        "nav.overview": "Oversigt",
        "nav.exceptions": "Undtagelser",
        "nav.audit": "Hændelseslog",
        "nav.api": "API",
        "nav.main": "Hovedmenu",
        "logout": "Log ud",
        "signed_in_as": "Logget ind som {user} ({role})",
        "role.admin": "administrator",
        "role.security_officer": "sikkerhedsansvarlig",
        "role.unit_manager": "enhedsleder",
        "login.title": "Log ind",
        "login.username": "Brugernavn",
        "login.password": "Adgangskode",
        "login.submit": "Log ind",
        "login.failed": "Forkert brugernavn eller adgangskode.",
        "login.locked": "Kontoen er midlertidigt spærret efter for mange mislykkede forsøg. Prøv igen senere.",
        "login.expired": "Du er blevet logget ud. Log ind igen.",
        "login.throttled": "For mange mislykkede login herfra. Prøv igen om {seconds} sekunder.",
        "csrf.failed": "Formularen var udløbet eller kom ikke fra denne side. Genindlæs siden, og prøv igen.",
        "forbidden": "Du har ikke adgang til denne side.",
        "not_found": "Siden findes ikke.",
        "overview.title": "Parathed pr. enhed",
        "overview.lead": "Andel af computerne, der opfylder alle obligatoriske kontroller. Godkendte undtagelser "
                         "tæller som opfyldt.",
        "unit": "Enhed",
        "units": "Enheder",
        "devices": "Computere",
        "devices.count.one": "{count} computer",
        "devices.count.other": "{count} computere",
        "readiness": "Parathed",
        "readiness.total": "Samlet parathed",
        "distribution": "Fordeling",
        "outdated_agents": "Ældre agent",
        "outdated_agents.help": "computere kører en ældre version af agenten",
        "state.ready": "Klar",
        "state.not_ready": "Ikke klar",
        "state.stale": "Uaktuel",
        "state.never_reported": "Aldrig rapporteret",
        "state.unknown": "Ukendt",
        "state.any": "Alle",
        "state.stale.help": "ingen rapport i over {hours} timer",
        "status": "Status",
        "status.pass": "Bestået",
        "status.fail": "Ikke bestået",
        "status.unknown": "Ukendt",
        "status.not_applicable": "Ikke relevant",
        "covered": "dækket af undtagelse",
        "covered.long": "✔ dækket af en undtagelse til og med {until}, givet af {by} med begrundelsen: {why}",
        "summary": "Sammenfatning",
        "children": "Underenheder",
        "failing_checks": "Kontroller, der ikke er opfyldt",
        "failing_checks.none": "Alle obligatoriske kontroller er opfyldt.",
        "check": "Kontrol",
        "check.any": "Alle kontroller",
        "severity.required": "obligatorisk",
        "severity.recommended": "anbefalet",
        "device_count": "Antal computere",
        "stale_longest": "Længst uden rapport",
        "stale_longest.none": "Alle computere har rapporteret inden for det seneste døgn.",
        "last_report": "Seneste rapport",
        "never": "aldrig",
        "hostname": "Computernavn",
        "os": "Styresystem",
        "os.any": "Alle",
        "platform": "Platform",
        "agent": "Agent",
        "subunit": "Underenhed",
        "subunit.any": "Hele enheden",
        "state": "Status",
        "filter": "Filtrér",
        "filter.reset": "Nulstil",
        "page": "Side {page} af {pages}",
        "prev": "← Forrige",
        "next": "Næste →",
        "no_devices": "Ingen computere matcher.",
        "export_csv": "Eksportér CSV",
        "json": "JSON",
        "trend": "Parathed de seneste {days} dage",
        "trend.empty": "Ingen historik endnu.",
        "trend.alt": "Kurve: andel klare computere pr. dag, fra {first} % til {last} %.",
        "device": "Computer",
        "device.id": "Computer-id",
        "serial": "Serienummer",
        "enrolled": "Tilmeldt",
        "results": "Seneste resultater",
        "results.none": "Computeren har ikke sendt nogen rapport endnu.",
        "messages": "Meddelelser",
        "evidence": "Dokumentation",
        "verdict": "Vurdering",
        "verdict.agent": "ifølge agenten",
        "timeline": "Rapporter",
        "timeline.lead": "Hver rapport er signeret med computerens egen nøgle (DSSE, Ed25519) og kan kontrolleres "
                         "uden indsamlingsserveren.",
        "download_report": "Hent signeret rapport",
        "verify_offline": "Kontrollér den offline med den offentlige nøgle nedenfor:",
        "public_key": "Computerens offentlige nøgle",
        "public_key.download": "Hent (PEM)",
        "keyid": "Nøgle-id",
        "sequence": "Nr.",
        "generated": "Oprettet",
        "received": "Modtaget",
        "policy": "Politik",
        "actions": "Handling",
        "exceptions.title": "Undtagelser",
        "exceptions.lead": "En undtagelse betyder, at en kontrol regnes som opfyldt for en computer eller en hel "
                           "enhed til og med en bestemt dato.",
        "exceptions.none": "Ingen undtagelser.",
        "exceptions.grant": "Giv undtagelse",
        "exceptions.granted": "Undtagelsen er givet.",
        "exceptions.revoked": "Undtagelsen er trukket tilbage.",
        "exceptions.only_officers": "Kun sikkerhedsansvarlige kan give og trække undtagelser tilbage.",
        "exceptions.active": "Gældende",
        "exceptions.inactive": "Udløbne og tilbagetrukne",
        "exceptions.show_inactive": "Vis også udløbne og tilbagetrukne",
        "target": "Gælder",
        "target.device": "Computer (id eller computernavn)",
        "target.unit": "Enhed",
        "target.choose_unit": "– vælg enhed –",
        "or": "eller",
        "expires": "Gælder til og med",
        "justification": "Begrundelse",
        "granted_by": "Givet af",
        "granted_at": "Givet",
        "revoke": "Træk tilbage",
        "revoke.reason": "Årsag",
        "revoked": "Trukket tilbage",
        "expired": "Udløbet",
        "grant.for_check": "Giv en undtagelse for denne kontrol",
        "error.generic": "Det lykkedes ikke: {message}",
        "error.already_revoked": "Undtagelsen er allerede trukket tilbage.",
        "error.device_not_found": "Ingen computer i dine enheder har det id eller computernavn.",
        "error.device_ambiguous": "Flere computere har det computernavn. Angiv computerens id i stedet.",
        "invalid.check_id": "Vælg en kontrol på listen.",
        "invalid.target": "Angiv enten en computer eller en enhed, ikke begge.",
        "invalid.justification": "Skriv en begrundelse på mindst 10 og højst 4.000 tegn.",
        "invalid.expires_at": "Vælg en slutdato fra og med i dag og højst {days} dage frem.",
        "invalid.reason": "Skriv, hvorfor undtagelsen trækkes tilbage (højst 4.000 tegn).",
        "invalid.since": "Angiv datoer som ÅÅÅÅ-MM-DD.",
        "footer": "Tallene kommer fra computernes signerede rapporter.",
        "footer.zone": "Tidspunkter vises i tidszonen {zone}.",
        "lang.switch": "Sprog",
        "total": "I alt",
        "all_units": "Alle enheder",
        "audit.title": "Hændelseslog",
        "audit.lead": "Hvem der har givet og trukket undtagelser tilbage, oprettet brugere og enheder, lavet "
                      "tilmeldingsnøgler, tilmeldt og spærret computere og skiftet politik.",
        "audit.only_officers": "Kun sikkerhedsansvarlige og administratorer kan læse hændelsesloggen.",
        "audit.none": "Ingen hændelser matcher.",
        "audit.at": "Tidspunkt",
        "audit.who": "Hvem",
        "audit.action": "Hændelse",
        "audit.object": "Gælder",
        "audit.action_code": "Hændelseskode",
        "audit.detail": "Detaljer",
        "audit.system": "systemet",
        "audit.from": "Fra og med",
        "audit.to": "Til og med",
        "audit.more.one": "Viser den seneste hændelse. Afgræns udvalget for at se ældre.",
        "audit.more.other": "Viser de {n} seneste hændelser. Afgræns udvalget for at se ældre.",
        "action.exception.grant": "Undtagelse givet",
        "action.exception.revoke": "Undtagelse trukket tilbage",
        "action.user.create": "Bruger oprettet",
        "action.user.disable": "Bruger deaktiveret",
        "action.user.locked": "Konto spærret efter mislykkede login",
        "action.unit.create": "Enhed oprettet",
        "action.token.create": "Tilmeldingsnøgle oprettet",
        "action.device.enroll": "Computer tilmeldt",
        "action.device.revoke": "Computer spærret",
        "action.policy.set": "Politik skiftet",
        "report.link": "Rapport til udvalget",
        "report.title": "Parathed til hjemmearbejde: {unit}",
        "report.period": "Periode {start} – {end}",
        "report.period.label": "Periode",
        "report.days": "{days} dage",
        "report.print": "Udskriv eller gem som PDF",
        "report.lead": "Rapport om, hvor mange af enhedens computere der er klar til arbejde med fortrolige "
                       "oplysninger uden for kontoret.",
        "report.now": "Status {when}",
        "report.trend": "Udviklingen i perioden",
        "report.trend.change": "Fra {first} den {since} til {last} ({change} procentpoint).",
        "report.trend.flat": "Uændret på {last} siden {since}.",
        "report.trend.first": "Intet tidligere tal at sammenligne med: ingen af enhedens computere havde "
                              "rapporteret før {since} (parathed {first} den dag).",
        "report.trend.none": "Ingen af enhedens computere har rapporteret endnu, så der er intet tal at "
                             "sammenligne.",
        "report.trend.table": "Parathed pr. uge",
        "report.week": "Uge, der slutter",
        "report.blocking": "Kontroller, der stopper flest computere",
        "report.exceptions": "Gældende undtagelser",
        "report.silent": "Computere, der længst ikke har rapporteret",
        "report.verify.title": "Sådan kan en revisor efterprøve tallene",
        "report.verify": "Hvert tal bygger på rapporter, som computerne selv har signeret (DSSE-konvolutter med "
                         "Ed25519, in-toto-format). En revisor kan hente hver rapport og computerens offentlige "
                         "nøgle fra computerens side i værktøjet eller via API'et (/api/v1/devices/ID/reports) og "
                         "kontrollere signaturen med et DSSE-værktøj, f.eks. securesystemslib, uden at "
                         "skulle stole på indsamlingsserveren.",
        "report.generated": "Udskrevet {when} af {user}.",
    },
    "en": {
        "app": "Remote-work readiness",
        "app.short": "auditagent",
        "skip": "Skip to content",
        "nav.overview": "Overview",
        "nav.exceptions": "Exceptions",
        "nav.audit": "Audit log",
        "nav.api": "API",
        "nav.main": "Main menu",
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
        "login.sso": "Log in with {provider}",
        "login.or_local": "Or with a local account (break-glass):",
        "login.local_disabled": "Password log-in is turned off. Use single sign-on.",
        "login.signed_out": "You are logged out of auditagent.",
        "login.sso_logout": "Also log out of {provider}",
        "sso.continue": "Logged in – continue",
        "sso.refused.title": "Log-in refused",
        "sso.try_again": "Try again",
        "oidc.unmapped": "Your account is known to the identity provider but belongs to no group that gives access to auditagent. Ask IT to add you to the right group.",
        "oidc.group_overage": "You are in too many groups for the provider to send them at log-in. IT needs to grant access through app roles or groups assigned to the application.",
        "oidc.expired": "The log-in had expired or began in another browser. Try again.",
        "oidc.bad_token": "The identity provider's answer could not be verified.",
        "oidc.provider_error": "The identity provider could not be reached or answered with an error. Try again later.",
        "oidc.provider_refused": "The identity provider cancelled the log-in.",
        "oidc.unit_missing": "The unit your group gives access to does not exist in auditagent ({detail}). Contact IT.",
        "oidc.name_taken": "The user name {detail} already belongs to a local account. Contact IT.",
        "oidc.disabled": "Your auditagent account is disabled.",
        "csrf.failed": "The form had expired or did not come from this page. Reload the page and try again.",
        "forbidden": "You do not have access to this page.",
        "not_found": "No such page.",
        "overview.title": "Readiness per unit",
        "overview.lead": "Share of devices that meet every required check. Granted exceptions count as met.",
        "unit": "Unit",
        "units": "Units",
        "devices": "Devices",
        "devices.count.one": "{count} device",
        "devices.count.other": "{count} devices",
        "readiness": "Readiness",
        "readiness.total": "Overall readiness",
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
        "verify_offline": "Verify it offline, with the public key below:",
        "public_key": "Device public key",
        "public_key.download": "Download (PEM)",
        "keyid": "Key id",
        "sequence": "No.",
        "generated": "Generated",
        "received": "Received",
        "policy": "Policy",
        "actions": "Action",
        "exceptions.title": "Exceptions",
        "exceptions.lead": "An exception counts a check as met for one device or a whole unit up to and including "
                           "a given date.",
        "exceptions.none": "No exceptions.",
        "exceptions.grant": "Grant an exception",
        "exceptions.granted": "The exception was granted.",
        "exceptions.revoked": "The exception was revoked.",
        "exceptions.only_officers": "Only security officers can grant and revoke exceptions.",
        "exceptions.active": "In force",
        "exceptions.inactive": "Expired and revoked",
        "exceptions.show_inactive": "Also show expired and revoked",
        "target": "Applies to",
        "target.device": "Device (id or host name)",
        "target.unit": "Unit",
        "target.choose_unit": "– choose a unit –",
        "or": "or",
        "expires": "Valid until (inclusive)",
        "justification": "Justification",
        "granted_by": "Granted by",
        "granted_at": "Granted",
        "revoke": "Revoke",
        "revoke.reason": "Reason",
        "revoked": "Revoked",
        "expired": "Expired",
        "grant.for_check": "Grant an exception for this check",
        "error.generic": "That did not work: {message}",
        "error.already_revoked": "The exception has already been revoked.",
        "error.device_not_found": "No device in your units has that id or host name.",
        "error.device_ambiguous": "Several devices have that host name. Give the device id instead.",
        "invalid.check_id": "Choose a check from the list.",
        "invalid.target": "Give either a device or a unit, not both.",
        "invalid.justification": "Write a justification of at least 10 and at most 4,000 characters.",
        "invalid.expires_at": "Choose an end date from today up to {days} days ahead.",
        "invalid.reason": "Say why the exception is revoked (at most 4,000 characters).",
        "invalid.since": "Give dates as YYYY-MM-DD.",
        "footer": "The figures come from the devices' signed reports.",
        "footer.zone": "Times are shown in the {zone} time zone.",
        "lang.switch": "Language",
        "total": "Total",
        "all_units": "All units",
        "audit.title": "Audit log",
        "audit.lead": "Who granted and revoked exceptions, added users and units, created enrolment tokens, "
                      "enrolled and revoked devices and changed a policy.",
        "audit.only_officers": "Only security officers and administrators can read the audit log.",
        "audit.none": "No entries match.",
        "audit.at": "Time",
        "audit.who": "Who",
        "audit.action": "Event",
        "audit.object": "Concerns",
        "audit.action_code": "Event code",
        "audit.detail": "Details",
        "audit.system": "the system",
        "audit.from": "From",
        "audit.to": "To (inclusive)",
        "audit.more.one": "Showing the latest entry. Narrow the selection to see older ones.",
        "audit.more.other": "Showing the {n} latest entries. Narrow the selection to see older ones.",
        "action.exception.grant": "Exception granted",
        "action.exception.revoke": "Exception revoked",
        "action.user.create": "User added",
        "action.user.disable": "User disabled",
        "action.user.locked": "Account locked after failed log-ins",
        "action.unit.create": "Unit created",
        "action.token.create": "Enrolment token created",
        "action.device.enroll": "Device enrolled",
        "action.device.revoke": "Device revoked",
        "action.policy.set": "Policy changed",
        "report.link": "Committee report",
        "report.title": "Remote-work readiness: {unit}",
        "report.period": "Period {start} – {end}",
        "report.period.label": "Period",
        "report.days": "{days} days",
        "report.print": "Print or save as PDF",
        "report.lead": "How many of the unit's devices are fit to carry confidential case files out of the "
                       "office.",
        "report.now": "Position at {when}",
        "report.trend": "Trend over the period",
        "report.trend.change": "From {first} on {since} to {last} ({change} percentage points).",
        "report.trend.flat": "Unchanged at {last} since {since}.",
        "report.trend.first": "No earlier figure to compare with: no device in the unit had reported before "
                              "{since} (readiness {first} that day).",
        "report.trend.none": "No device in the unit has reported yet, so there is no figure to compare.",
        "report.trend.table": "Readiness per week",
        "report.week": "Week ending",
        "report.blocking": "Checks blocking the most devices",
        "report.exceptions": "Exceptions in force",
        "report.silent": "Devices silent longest",
        "report.verify.title": "How an auditor can verify these figures",
        "report.verify": "Every figure rests on reports the devices signed themselves (DSSE envelopes with "
                         "Ed25519, in-toto format). An auditor can download each report and the device's public "
                         "key from the device's page in this tool, or through the API "
                         "(/api/v1/devices/ID/reports), and check the signature with any DSSE tool, for example "
                         "securesystemslib, without trusting the collector.",
        "report.generated": "Printed {when} by {user}.",
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
        "exceptions.granted.named": "Undantag beviljat: {check} på {target}, gäller till och med {until}.",
        "exceptions.ended": "Återkallade och utgångna",
        "exceptions.ended.none": "Inga återkallade eller utgångna undantag.",
        "target.device.named": "Datorn {hostname} (id {id})",
        "trend.rule": "Varje dag visar hur datorerna stod vid dagens slut (midnatt, {zone}), bedömda på sin senaste rapport före dess: redo, åtgärd krävs (ett fel inom sin respittid; räknas som redo), inte redo (också när respittiden gått ut utan en godkänd rapport), inaktuell (senaste rapporten äldre än enhetens maxålder, till exempel en dator som varit avstängd under helgen) eller aldrig rapporterat. Dagens punkt är just nu och stämmer med siffrorna ovan.",
        "trend.bands.alt": "Staplat diagram: datorernas status per dag. Nu: {ready} redo, {due} med åtgärd krävs, {not_ready} inte redo, {stale} inaktuella och {never} som aldrig rapporterat, av {total}.",
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
        "export.too_many_rows": "Fler än {limit} datorer: fler rader än ett Excel-blad rymmer. Hämta CSV-filen i stället – den har samma rader och kolumner och ingen radgräns.",
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
        "exceptions.granted.named": "Undtagelse givet: {check} på {target}, gælder til og med {until}.",
        "exceptions.ended": "Tilbagekaldte og udløbne",
        "exceptions.ended.none": "Ingen tilbagekaldte eller udløbne undtagelser.",
        "target.device.named": "Computeren {hostname} (id {id})",
        "trend.rule": "Hver dag viser, hvordan computerne stod ved dagens slutning (midnat, {zone}), vurderet ud fra deres seneste rapport inden da: klar, handling kræves (en fejl inden for sin frist; tælles som klar), ikke klar (også når fristen er udløbet uden en godkendt rapport), forældet (den seneste rapport er ældre end enhedens maksimale alder, fx en computer der har været slukket i weekenden) eller aldrig rapporteret. Dagens punkt er lige nu og svarer til tallene ovenfor.",
        "trend.bands.alt": "Stablet diagram: computernes status pr. dag. Nu: {ready} klar, {due} med handling kræves, {not_ready} ikke klar, {stale} forældede og {never} der aldrig har rapporteret, ud af {total}.",
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
        "export.too_many_rows": "Mere end {limit} computere: flere rækker, end et Excel-ark kan rumme. Hent CSV-filen i stedet – den har de samme rækker og kolonner og ingen rækkegrænse.",
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
        "exceptions.granted.named": "Exception granted: {check} on {target}, valid through {until}.",
        "exceptions.ended": "Revoked and expired",
        "exceptions.ended.none": "No revoked or expired exceptions.",
        "target.device.named": "The device {hostname} (id {id})",
        "trend.rule": "Each day shows the devices as they stood at the end of that day (midnight, {zone}), judged by their latest report before then: ready, due (a failure inside its grace period; counted as ready), not ready (also once the grace period ran out without a passing report), stale (the latest report older than the unit's maximum age, such as a laptop switched off over the weekend) or never reported. Today's point is now and matches the figures above.",
        "trend.bands.alt": "Stacked chart: the devices' state per day. Now: {ready} ready, {due} due, {not_ready} not ready, {stale} stale and {never} never reported, of {total}.",
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
        "export.too_many_rows": "More than {limit} devices: more rows than an Excel sheet holds. Download the CSV file instead: it has the same rows and columns and no row limit.",
        "yes": "yes",
        "no": "no",
    },
}
# Danish for the single sign-on pages (their sv and en are in MESSAGES above).
SIGN_ON_MESSAGES: dict[str, dict[str, str]] = {
    "da": {
        "login.sso": "Log ind med {provider}",
        "login.or_local": "Eller med en lokal konto (nødadgang):",
        "login.local_disabled": "Log ind med adgangskode er slået fra. Brug single sign-on.",
        "login.signed_out": "Du er logget ud af auditagent.",
        "login.sso_logout": "Log også ud af {provider}",
        "sso.continue": "Logget ind – fortsæt",
        "sso.refused.title": "Log ind blev afvist",
        "sso.try_again": "Prøv igen",
        "oidc.unmapped": "Din konto er kendt af identitetsudbyderen, men tilhører ingen gruppe, der giver adgang til auditagent. Bed IT om at tilføje dig til den rette gruppe.",
        "oidc.group_overage": "Du er med i for mange grupper til, at udbyderen kan sende dem ved log ind. IT skal give adgang via app-roller eller grupper, der er tildelt applikationen.",
        "oidc.expired": "Log ind var udløbet eller begyndte i en anden browser. Prøv igen.",
        "oidc.bad_token": "Svaret fra identitetsudbyderen kunne ikke verificeres.",
        "oidc.provider_error": "Identitetsudbyderen kunne ikke nås eller svarede med en fejl. Prøv igen senere.",
        "oidc.provider_refused": "Identitetsudbyderen afbrød log ind.",
        "oidc.unit_missing": "Enheden, som din gruppe giver adgang til, findes ikke i auditagent ({detail}). Kontakt IT.",
        "oidc.name_taken": "Brugernavnet {detail} tilhører allerede en lokal konto. Kontakt IT.",
        "oidc.disabled": "Din konto i auditagent er deaktiveret.",
    },
}

# The notifications page: each user's own daily digests.
SUBSCRIPTION_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "nav.subscriptions": "Aviseringar",
        "subscriptions.title": "Mina aviseringar",
        "subscriptions.lead": "En sammanfattning per dag för en enhet och dess underenheter: datorer som inte "
                              "längre är redo eller har slutat rapportera, undantag som snart upphör och "
                              "beredskap under målet. Du kan välja bland de enheter du har behörighet till.",
        "subscriptions.no_delivery": "Utskick är inte konfigurerat på den här servern ännu; aviseringarna "
                                     "skickas när IT har ställt in e-post.",
        "subscriptions.mine": "Dina prenumerationer",
        "subscriptions.none": "Du prenumererar inte på några sammanfattningar.",
        "subscriptions.events": "Händelser",
        "subscriptions.channel": "Skickas till",
        "subscriptions.channel.email": "E-post",
        "subscriptions.channel.webhook": "Webhook-anrop",
        "subscriptions.lang": "Språk i sammanfattningen",
        "subscriptions.last_digest": "Senast skickad",
        "subscriptions.delete": "Avsluta",
        "subscriptions.delete.named": "Avsluta prenumerationen på {unit}",
        "subscriptions.add": "Ny prenumeration",
        "subscriptions.exception_days": "Undantag som upphör inom (dagar)",
        "subscriptions.target_pct": "Mål för beredskap (%)",
        "subscriptions.target": "E-postadress eller webhook-adress (https://…)",
        "subscriptions.submit": "Prenumerera",
        "subscriptions.saved": "Prenumerationen är sparad. Sammanfattningen kommer en gång om dagen när något har hänt.",
        "subscriptions.created": "Prenumerationen på {unit} är sparad.",
        "subscriptions.secret": "Webhookens hemlighet visas bara nu. Spara den hos mottagaren: den verifierar "
                                "signaturen i X-Auditagent-Signature.",
        "subscriptions.deleted": "Prenumerationen är avslutad.",
        "subscriptions.not_found": "Den prenumerationen finns inte bland dina.",
        "subscriptions.unit_unknown": "Välj en enhet i listan: du kan bara prenumerera på enheter du har behörighet till.",
        "subscriptions.event.not_ready": "Datorer som inte längre är redo",
        "subscriptions.event.silent": "Datorer som slutat rapportera",
        "subscriptions.event.exception_expiring": "Undantag som upphör inom {days} dagar",
        "subscriptions.event.below_target": "Beredskap under {target} %",
        "subscriptions.event.not_ready.choice": "Datorer som inte längre är redo",
        "subscriptions.event.silent.choice": "Datorer som slutat rapportera",
        "subscriptions.event.exception_expiring.choice": "Undantag som snart upphör",
        "subscriptions.event.below_target.choice": "Enhetens beredskap under målet",
        "subscriptions.invalid.unit_id": "Välj en enhet i listan.",
        "subscriptions.invalid.events": "Välj minst en händelse.",
        "subscriptions.invalid.target": "Ange en e-postadress (till exempel it-sakerhet@kommun.se) eller en "
                                        "https://-adress för en webhook.",
        "subscriptions.invalid.channel": "Välj e-post eller webhook.",
        "subscriptions.invalid.exception_days": "Ange antal dagar från 1 till 90.",
        "subscriptions.invalid.target_pct": "Ange ett mål från 1 till 100 % när du vill veta om beredskapen "
                                            "är under målet.",
        "subscriptions.invalid.lang": "Välj svenska, danska eller engelska.",
        "subscriptions.error.webhook_not_allowed": "Webhooks får bara gå till servrar som IT har godkänt i "
                                                   "serverns inställningar.",
    },
    "da": {
        "nav.subscriptions": "Notifikationer",
        "subscriptions.title": "Mine notifikationer",
        "subscriptions.lead": "En daglig oversigt for en enhed og dens underenheder: computere, der ikke længere "
                              "er klar eller er holdt op med at rapportere, undtagelser, der snart udløber, og "
                              "parathed under målet. Du kan vælge mellem de enheder, du har adgang til.",
        "subscriptions.no_delivery": "Udsendelse er ikke sat op på denne server endnu; notifikationerne sendes, "
                                     "når IT har sat e-mail op.",
        "subscriptions.mine": "Dine abonnementer",
        "subscriptions.none": "Du abonnerer ikke på nogen oversigter.",
        "subscriptions.events": "Hændelser",
        "subscriptions.channel": "Sendes til",
        "subscriptions.channel.email": "E-mail",
        "subscriptions.channel.webhook": "Webhook-kald",
        "subscriptions.lang": "Sprog i oversigten",
        "subscriptions.last_digest": "Senest sendt",
        "subscriptions.delete": "Afmeld",
        "subscriptions.delete.named": "Afmeld abonnementet på {unit}",
        "subscriptions.add": "Nyt abonnement",
        "subscriptions.exception_days": "Undtagelser, der udløber inden for (dage)",
        "subscriptions.target_pct": "Mål for parathed (%)",
        "subscriptions.target": "E-mailadresse eller webhook-adresse (https://…)",
        "subscriptions.submit": "Abonnér",
        "subscriptions.saved": "Abonnementet er gemt. Oversigten kommer én gang om dagen, når der er sket noget.",
        "subscriptions.created": "Abonnementet på {unit} er gemt.",
        "subscriptions.secret": "Webhookens hemmelighed vises kun nu. Gem den hos modtageren: den verificerer "
                                "signaturen i X-Auditagent-Signature.",
        "subscriptions.deleted": "Abonnementet er afmeldt.",
        "subscriptions.not_found": "Det abonnement findes ikke blandt dine.",
        "subscriptions.unit_unknown": "Vælg en enhed på listen: du kan kun abonnere på enheder, du har adgang til.",
        "subscriptions.event.not_ready": "Computere, der ikke længere er klar",
        "subscriptions.event.silent": "Computere, der er holdt op med at rapportere",
        "subscriptions.event.exception_expiring": "Undtagelser, der udløber inden for {days} dage",
        "subscriptions.event.below_target": "Parathed under {target} %",
        "subscriptions.event.not_ready.choice": "Computere, der ikke længere er klar",
        "subscriptions.event.silent.choice": "Computere, der er holdt op med at rapportere",
        "subscriptions.event.exception_expiring.choice": "Undtagelser, der snart udløber",
        "subscriptions.event.below_target.choice": "Enhedens parathed under målet",
        "subscriptions.invalid.unit_id": "Vælg en enhed på listen.",
        "subscriptions.invalid.events": "Vælg mindst én hændelse.",
        "subscriptions.invalid.target": "Angiv en e-mailadresse (fx it-sikkerhed@kommune.dk) eller en "
                                        "https://-adresse til en webhook.",
        "subscriptions.invalid.channel": "Vælg e-mail eller webhook.",
        "subscriptions.invalid.exception_days": "Angiv et antal dage fra 1 til 90.",
        "subscriptions.invalid.target_pct": "Angiv et mål fra 1 til 100 %, når du vil vide, om paratheden er "
                                            "under målet.",
        "subscriptions.invalid.lang": "Vælg svensk, dansk eller engelsk.",
        "subscriptions.error.webhook_not_allowed": "Webhooks må kun gå til servere, som IT har godkendt i "
                                                   "serverens indstillinger.",
    },
    "en": {
        "nav.subscriptions": "Notifications",
        "subscriptions.title": "My notifications",
        "subscriptions.lead": "A daily digest for a unit and its sub-units: devices no longer ready or no longer "
                              "reporting, exceptions about to end, and readiness below target. You can choose "
                              "among the units you may see.",
        "subscriptions.no_delivery": "Delivery is not configured on this server yet; digests are sent once IT "
                                     "has set up e-mail.",
        "subscriptions.mine": "Your subscriptions",
        "subscriptions.none": "You do not subscribe to any digests.",
        "subscriptions.events": "Events",
        "subscriptions.channel": "Sent to",
        "subscriptions.channel.email": "Email",
        "subscriptions.channel.webhook": "Webhook call",
        "subscriptions.lang": "Language of the digest",
        "subscriptions.last_digest": "Last sent",
        "subscriptions.delete": "Unsubscribe",
        "subscriptions.delete.named": "Unsubscribe from {unit}",
        "subscriptions.add": "New subscription",
        "subscriptions.exception_days": "Exceptions ending within (days)",
        "subscriptions.target_pct": "Readiness target (%)",
        "subscriptions.target": "E-mail address or webhook address (https://…)",
        "subscriptions.submit": "Subscribe",
        "subscriptions.saved": "The subscription is saved. The digest comes once a day when something has happened.",
        "subscriptions.created": "The subscription to {unit} is saved.",
        "subscriptions.secret": "The webhook's secret is shown only now. Keep it at the receiver: it verifies "
                                "the signature in X-Auditagent-Signature.",
        "subscriptions.deleted": "You are unsubscribed.",
        "subscriptions.not_found": "That subscription is not one of yours.",
        "subscriptions.unit_unknown": "Choose a unit from the list: you can subscribe only to units you may see.",
        "subscriptions.event.not_ready": "Devices no longer ready",
        "subscriptions.event.silent": "Devices that stopped reporting",
        "subscriptions.event.exception_expiring": "Exceptions ending within {days} days",
        "subscriptions.event.below_target": "Readiness below {target} %",
        "subscriptions.event.not_ready.choice": "Devices no longer ready",
        "subscriptions.event.silent.choice": "Devices that stopped reporting",
        "subscriptions.event.exception_expiring.choice": "Exceptions about to end",
        "subscriptions.event.below_target.choice": "The unit's readiness below target",
        "subscriptions.invalid.unit_id": "Choose a unit from the list.",
        "subscriptions.invalid.events": "Choose at least one event.",
        "subscriptions.invalid.target": "Give an e-mail address (e.g. it-security@council.example) or an "
                                        "https:// address for a webhook.",
        "subscriptions.invalid.channel": "Choose e-mail or webhook.",
        "subscriptions.invalid.exception_days": "Give a number of days from 1 to 90.",
        "subscriptions.invalid.target_pct": "Give a target from 1 to 100 % to hear when readiness is below it.",
        "subscriptions.invalid.lang": "Choose Swedish, Danish or English.",
        "subscriptions.error.webhook_not_allowed": "Webhooks may go only to servers IT has allowed in the "
                                                   "server's settings.",
    },
}

# The daily digest (server.notify), in the subscriber's language; counts in both forms.
DIGEST_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "digest.subject": "auditagent: dagens sammanfattning för {unit}",
        "digest.intro": "Sammanfattning för {unit} ({day}). Beredskap nu: {pct}.",
        "digest.not_ready.one": "{count} dator är inte längre redo:",
        "digest.not_ready.other": "{count} datorer är inte längre redo:",
        "digest.silent.one": "{count} dator har slutat rapportera:",
        "digest.silent.other": "{count} datorer har slutat rapportera:",
        "digest.exception_expiring.one": "{count} undantag upphör inom {days} dagar:",
        "digest.exception_expiring.other": "{count} undantag upphör inom {days} dagar:",
        "digest.below_target": "Enhetens beredskap {pct} är under målet {target} %.",
        "digest.exception_line": "{check} på {where}, upphör {until}",
        "digest.more.one": "… och {n} till.",
        "digest.more.other": "… och {n} till.",
        "digest.footer": "Öppna instrumentpanelen för detaljer. Du får detta eftersom du prenumererar på {unit}.",
    },
    "da": {
        "digest.subject": "auditagent: dagens oversigt for {unit}",
        "digest.intro": "Oversigt for {unit} ({day}). Parathed nu: {pct}.",
        "digest.not_ready.one": "{count} computer er ikke længere klar:",
        "digest.not_ready.other": "{count} computere er ikke længere klar:",
        "digest.silent.one": "{count} computer er holdt op med at rapportere:",
        "digest.silent.other": "{count} computere er holdt op med at rapportere:",
        "digest.exception_expiring.one": "{count} undtagelse udløber inden for {days} dage:",
        "digest.exception_expiring.other": "{count} undtagelser udløber inden for {days} dage:",
        "digest.below_target": "Enhedens parathed {pct} er under målet på {target} %.",
        "digest.exception_line": "{check} på {where}, udløber {until}",
        "digest.more.one": "… og {n} mere.",
        "digest.more.other": "… og {n} mere.",
        "digest.footer": "Åbn dashboardet for detaljer. Du får dette, fordi du abonnerer på {unit}.",
    },
    "en": {
        "digest.subject": "auditagent: today's digest for {unit}",
        "digest.intro": "Digest for {unit} ({day}). Readiness now: {pct}.",
        "digest.not_ready.one": "{count} device is no longer ready:",
        "digest.not_ready.other": "{count} devices are no longer ready:",
        "digest.silent.one": "{count} device stopped reporting:",
        "digest.silent.other": "{count} devices stopped reporting:",
        "digest.exception_expiring.one": "{count} exception ends within {days} days:",
        "digest.exception_expiring.other": "{count} exceptions end within {days} days:",
        "digest.below_target": "The unit's readiness {pct} is below its target of {target} %.",
        "digest.exception_line": "{check} on {where}, ends {until}",
        "digest.more.one": "… and {n} more.",
        "digest.more.other": "… and {n} more.",
        "digest.footer": "Open the dashboard for details. You get this because you subscribe to {unit}.",
    },
}
# Keys of failing-since and the grace period's "due" state (issue 11 items 2-3).
GRACE_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "state.due": "Åtgärd krävs",
        "state.due.help": "fel inom respitiden, räknas som redo",
        "failing_since": "Fel sedan",
        "failing_since.short": "sedan {when}",
        "failing_since.oldest": "äldsta fel sedan {when}",
        "failing_longest": "Längst utan åtgärd",
        "failing_longest.none": "Ingen obligatorisk kontroll misslyckas.",
        "due_until": "åtgärda senast {when}",
        "due_passed": "respittiden gick ut {when}",
        "export.col.failing_since": "Fel sedan (UTC)",
        "export.col.due_until": "Åtgärda senast (UTC)",
    },
    "da": {
        "state.due": "Handling kræves",
        "state.due.help": "fejl inden for fristen, tælles som klar",
        "failing_since": "Fejl siden",
        "failing_since.short": "siden {when}",
        "failing_since.oldest": "ældste fejl siden {when}",
        "failing_longest": "Længst uden udbedring",
        "failing_longest.none": "Ingen obligatorisk kontrol fejler.",
        "due_until": "udbedres senest {when}",
        "due_passed": "fristen udløb {when}",
        "export.col.failing_since": "Fejl siden (UTC)",
        "export.col.due_until": "Udbedres senest (UTC)",
    },
    "en": {
        "state.due": "Due",
        "state.due.help": "failing within its grace period, counted as ready",
        "failing_since": "Failing since",
        "failing_since.short": "since {when}",
        "failing_since.oldest": "oldest failing since {when}",
        "failing_longest": "Failing longest",
        "failing_longest.none": "No required check is failing.",
        "due_until": "fix by {when}",
        "due_passed": "grace period ended {when}",
        "export.col.failing_since": "Failing since (UTC)",
        "export.col.due_until": "Fix by (UTC)",
    },
}
# The trend chart's words when a unit has only a few days of history, its text
# alternative and its table of numbers (server/trend_svg.py, the trend_chart macro).
TREND_MESSAGES: dict[str, dict[str, str]] = {
    "sv": {
        "trend.since.one": "Historik sedan {day} ({n} dag).",
        "trend.since.other": "Historik sedan {day} ({n} dagar).",
        "trend.one_day": "Bara en dag med data hittills. Utvecklingen visas när fler dagar har gått.",
        "trend.desc.one_day": "En dag med data: {day}.",
        "trend.desc.period.one": "Från {first} till {last} ({n} dag).",
        "trend.desc.period.other": "Från {first} till {last} ({n} dagar).",
        "trend.desc.gaps.one": "{n} dag utan data.",
        "trend.desc.gaps.other": "{n} dagar utan data.",
        "trend.day.title": "{day}: beredskap {pct} (redo {ready}, åtgärd krävs {due}, totalt {total})",
        "trend.numbers": "Visa siffrorna per dag",
        "trend.col.day": "Dag",
        "trend.no_data": "ingen data",
    },
    "da": {
        "trend.since.one": "Historik siden {day} ({n} dag).",
        "trend.since.other": "Historik siden {day} ({n} dage).",
        "trend.one_day": "Kun én dag med data indtil nu. Udviklingen vises, når flere dage er gået.",
        "trend.desc.one_day": "Én dag med data: {day}.",
        "trend.desc.period.one": "Fra {first} til {last} ({n} dag).",
        "trend.desc.period.other": "Fra {first} til {last} ({n} dage).",
        "trend.desc.gaps.one": "{n} dag uden data.",
        "trend.desc.gaps.other": "{n} dage uden data.",
        "trend.day.title": "{day}: parathed {pct} (klar {ready}, handling kræves {due}, i alt {total})",
        "trend.numbers": "Vis tallene pr. dag",
        "trend.col.day": "Dag",
        "trend.no_data": "ingen data",
    },
    "en": {
        "trend.since.one": "History since {day} ({n} day).",
        "trend.since.other": "History since {day} ({n} days).",
        "trend.one_day": "Only one day of data so far. The trend shows as more days pass.",
        "trend.desc.one_day": "One day of data: {day}.",
        "trend.desc.period.one": "From {first} to {last} ({n} day).",
        "trend.desc.period.other": "From {first} to {last} ({n} days).",
        "trend.desc.gaps.one": "{n} day without data.",
        "trend.desc.gaps.other": "{n} days without data.",
        "trend.day.title": "{day}: readiness {pct} (ready {ready}, due {due}, total {total})",
        "trend.numbers": "Show the numbers per day",
        "trend.col.day": "Day",
        "trend.no_data": "no data",
    },
}
for _extra in (READINESS_MESSAGES, SIGN_ON_MESSAGES, SUBSCRIPTION_MESSAGES, DIGEST_MESSAGES, GRACE_MESSAGES,
               TREND_MESSAGES):
    for _lang, _msgs in _extra.items():
        _catalogue = MESSAGES.setdefault(_lang, {})
        for _key, _text in _msgs.items():
            _catalogue.setdefault(_key, _text)


class Translator:
    """``t("key", name=value)`` in one language, and numbers/times for that reader.

    Unknown keys fall back to English, then the key (tests keep the catalogues equal)."""

    def __init__(self, lang: str, zone: str = DEFAULT_ZONE) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self.zone_name = zone
        self.tz = time_zone(zone)

    def _template(self, key: str, args: dict[str, Any]) -> str | None:
        text = MESSAGES[self.lang].get(key) or MESSAGES["en"].get(key)
        if text is None and count_in(args) is not None:  # a count message: its form for the count
            form = plural_key(key, count_in(args))
            text = MESSAGES[self.lang].get(form) or MESSAGES["en"].get(form)
        return text

    def __call__(self, key: str, **args: Any) -> str:
        text = self._template(key, args)
        if text is None:
            return key  # an unknown key is text, never a template
        return fill(text, args)

    def markup(self, key: str, **args: Any) -> Markup:
        """The sentence ``key`` as markup for a page: its text escaped, and each value
        escaped (made visible as :func:`neutralise` does) unless it is markup we built,
        such as a name from :func:`server.name_breaks.breakable`."""
        text = self._template(key, args)
        if text is None:
            return escape(key)
        shown = {k: v if isinstance(v, Markup) else escape(neutralise(v)) for k, v in args.items()}
        return Markup(fill(str(escape(text)), shown))

    def has(self, key: str) -> bool:
        return key in MESSAGES[self.lang]

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        text = f"{value:,.{digits}f}"
        if self.lang == "sv":  # 12 345,6
            text = text.replace(",", "\u00a0").replace(".", ",")
        elif self.lang == "da":  # 12.345,6
            text = text.replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")
        return text

    def pct(self, value: float | None) -> str:
        """'87,5 %' ('–' for none); whole numbers at 0 and 100."""
        if value is None:
            return "–"
        return self.number(value, 1 if value not in (0, 100) else 0) + "\u00a0%"

    def local(self, value: Any) -> dt.datetime | None:
        """A stored (UTC) time as an aware datetime in the organisation's zone."""
        if isinstance(value, str) and value:
            try:
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
        if not isinstance(value, dt.datetime):
            return None
        if value.tzinfo is None:  # naive values from the database are UTC
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(self.tz)

    def _date_text(self, d: dt.date) -> str:
        return d.strftime("%d.%m.%Y") if self.lang == "da" else d.isoformat()

    def when(self, value: Any, with_time: bool = True) -> str:
        """A time as local 'YYYY-MM-DD HH:MM CET' (Danish: 'DD.MM.YYYY HH:MM CET'); '–' for none."""
        if value is None or value == "":
            return "–"
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return self._date_text(value)
        local = self.local(value)
        if local is None:
            return str(value)
        if not with_time:
            return self._date_text(local.date())
        return f"{self._date_text(local.date())} {local:%H:%M} {local.tzname()}"

    def day(self, value: Any) -> str:
        """A date (or the local date of a time) in the organisation's zone."""
        return self.when(value, with_time=False)

    def until(self, value: Any) -> str:
        """The last day an end time covers (an exception valid until local midnight
        ending 31 May reads '2026-05-31')."""
        local = self.local(value)
        if local is None:
            return self.day(value)
        return self._date_text((local - dt.timedelta(microseconds=1)).date())

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
    """The best of sv/da/en (nb/nn/no read as da) in an Accept-Language header; None if none."""
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
        code = ALIASES.get(code, code)
        if code in LANGS and q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, code)
    return best[2] if best else None


def choose_language(query: str | None, cookie: str | None, user_pref: str | None, accept: str | None) -> str:
    for cand in (query, cookie, user_pref):
        if cand in LANGS:
            return cand  # type: ignore[return-value]
    return parse_accept_language(accept) or DEFAULT
