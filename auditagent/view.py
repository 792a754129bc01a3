"""The staff self-check, shown: terminal text, a standalone HTML page, or JSON.

Verdict first, then each check with a one-line reason and, when it is not OK, the
steps to fix it — in the person's language.
"""
from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from auditagent.evaluate import Evaluation, Result
from auditagent.i18n import translate
from auditagent.policy import Policy

SYMBOLS = {"pass": "✔", "fail": "✘", "unknown": "?", "not_applicable": "–"}
COLOURS = {"pass": "32", "fail": "31", "unknown": "33", "not_applicable": "90"}


def local_time(iso: str, lang: str) -> str:
    """An ISO timestamp (UTC) as this computer's local time, the way ``lang`` writes it."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone()
    return translate("time.checked", {"year": f"{t.year:04d}", "month": f"{t.month:02d}", "day": f"{t.day:02d}",
                                      "hour": f"{t.hour:02d}", "minute": f"{t.minute:02d}"}, lang)


def fix_by(due: Any, lang: str) -> str:
    """"åtgärda senast 3 december": a grace deadline as this computer's local date."""
    t = due.astimezone()
    date = translate("date.day_month", {"day": t.day, "month": translate(f"month.{t.month}", None, lang)}, lang)
    return translate("grace.fix_by", {"date": date}, lang)


def step_parts(step: str) -> list[tuple[bool, str]]:
    """A fix step split into (is_command, text): commands are written in `backticks` in the policy."""
    parts = step.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: show the text as written
        return [(False, step)]
    return [(i % 2 == 1, part) for i, part in enumerate(parts) if part]


def reason(result: Result, lang: str) -> str:
    return " ".join(translate(m.code, m.args, lang) for m in result.messages) or translate(
        f"status.{result.status}", None, lang)


def _titles(policy: Policy) -> dict[str, dict[str, str]]:
    return {c.id: c.title for c in policy.checks}


def summary_line(evaluation: Evaluation, lang: str) -> str:
    c = evaluation.counts
    return translate("heading.summary", {"passed": c["pass"], "failed": c["fail"], "unknown": c["unknown"],
                                         "na": c["not_applicable"]}, lang)


def render_text(policy: Policy, evaluation: Evaluation, lang: str, colour: bool = False,
                deadlines: dict[str, Any] | None = None) -> str:
    """``deadlines``: check id → its grace deadline (:mod:`auditagent.grace`), shown under it."""
    deadlines = deadlines or {}
    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    titles = _titles(policy)
    ok = evaluation.verdict == "ready"
    lines = [paint(translate(f"verdict.{evaluation.verdict}", None, lang), "1;32" if ok else "1;31"), ""]
    lines.append(f"{translate('heading.policy', None, lang)}: {policy.title.get(lang, policy.id)} "
                 f"({translate('heading.version', None, lang)} {policy.version}) · "
                 f"{translate('heading.checked_at', None, lang)}: {local_time(evaluation.collected_at, lang)}")
    lines.append("")
    for r in evaluation.results:
        title = titles.get(r.check_id, {}).get(lang, r.check_id)
        sev = "" if r.severity == "required" else f" ({translate('severity.' + r.severity, None, lang)})"
        lines.append(f" {paint(SYMBOLS[r.status], COLOURS[r.status])} {title}{sev}: {reason(r, lang)}")
        if r.status in ("fail", "unknown") and r.check_id in deadlines:
            lines.append("     " + paint(fix_by(deadlines[r.check_id], lang), "1;33"))
        if r.status in ("fail", "unknown"):
            steps = r.remediation.get(lang) or r.remediation.get("en") or []
            if steps:
                lines.append(f"     {translate('heading.how_to_fix', None, lang)}:")
                lines.extend(f"       {i}. " + "".join(paint(t, "1;36") if cmd else t for cmd, t in step_parts(step))
                             for i, step in enumerate(steps, 1))
                if r.other_remediation:
                    lines.append(f"     {translate('heading.other_systems_hint', None, lang)}")
    lines += ["", summary_line(evaluation, lang)]
    return "\n".join(lines) + "\n"


def as_json(policy: Policy, facts: dict[str, Any], evaluation: Evaluation, lang: str,
            deadlines: dict[str, Any] | None = None) -> dict[str, Any]:
    deadlines = deadlines or {}
    data = evaluation.to_dict()
    titles = _titles(policy)
    for r, rd in zip(evaluation.results, data["results"]):
        rd["title"] = titles.get(r.check_id, {}).get(lang, r.check_id)
        rd["reason"] = reason(r, lang)
        rd["remediation"] = r.remediation.get(lang) or r.remediation.get("en") or []
        if r.status in ("fail", "unknown") and r.check_id in deadlines:
            rd["due_until"] = deadlines[r.check_id].astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    data["lang"] = lang
    data["facts"] = facts
    return data


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.45}
.verdict{padding:1rem 1.25rem;border-radius:.5rem;font-size:1.25rem;font-weight:600}
.ready{background:#e6f4ea;border:2px solid #1e7e34}.not_ready{background:#fdecea;border:2px solid #b3261e}
ul.checks{list-style:none;padding:0}ul.checks>li{border:1px solid #ddd;border-radius:.5rem;margin:.6rem 0;
padding:.75rem 1rem}.sym{font-weight:700;margin-right:.4rem}.pass .sym{color:#1e7e34}.fail .sym{color:#b3261e}
.unknown .sym{color:#8a6d00}.not_applicable{color:#666}.sev{font-size:.8rem;color:#555}
ol{margin:.4rem 0 0 1.2rem}details{margin-top:2rem}pre{background:#f5f5f5;padding:1rem;overflow:auto;
font-size:.8rem}.meta{color:#555;font-size:.9rem}code{background:#f0f0f0;border:1px solid #ddd;border-radius:.25rem;
padding:0 .25rem;font-size:.9em;overflow-wrap:anywhere}.langs{text-align:right;font-size:.9rem}
.langs a[aria-current]{font-weight:700;color:inherit;text-decoration:none}
details.others{margin-top:.4rem}details.others h3{font-size:.95rem;margin:.6rem 0 0}
"""


# Which distributions a policy's ``linux.<id>`` steps reach (the id, and those whose
# os-release ID_LIKE names it); proper names, the same in every language.
DISTRO_FAMILIES = {
    "debian": ("Debian", "Ubuntu", "Linux Mint", "Pop!_OS"),
    "ubuntu": ("Ubuntu", "Linux Mint", "Pop!_OS"),
    "fedora": ("Fedora", "RHEL", "Rocky Linux", "AlmaLinux"),
    "rhel": ("RHEL", "Rocky Linux", "AlmaLinux"),
    "suse": ("openSUSE", "SLES"),
}


def remediation_label(key: str, lang: str, siblings: tuple[str, ...] = ()) -> str:
    """A heading for a remediation entry: "Debian" (when Ubuntu has its own), "Andra Linux-system"."""
    platform, _, distro = key.partition(".")
    if not distro:
        return translate("heading.other_platform", {"platform": platform}, lang)
    os_id, _, major = distro.partition(".")
    names = DISTRO_FAMILIES.get(os_id, (os_id.capitalize(),))
    # Leave out derivatives that have steps of their own.
    mine = set(names)
    taken = set()
    for k in siblings:
        family = set(DISTRO_FAMILIES.get(k.split(".")[1], ())) if k.startswith(platform + ".") else set()
        if k != key and family and family < mine:
            taken |= family
    shown = [n for n in names if n not in taken] or list(names)
    return f"{', '.join(shown)} {major}".strip()


def _html_others(r: Result, lang: str) -> str:
    if not r.other_remediation:
        return ""
    e = html.escape
    keys = tuple(r.other_remediation) + ((r.remediation_key,) if r.remediation_key else ())
    blocks = "".join(
        f"<h3>{e(remediation_label(key, lang, keys))}</h3><ol>"
        + "".join(f"<li>{_html_step(s)}</li>" for s in (steps.get(lang) or steps.get("en") or [])) + "</ol>"
        for key, steps in r.other_remediation.items())
    return f'<details class="others"><summary>{e(translate("heading.other_systems", None, lang))}</summary>{blocks}</details>'


def _html_step(step: str) -> str:
    return "".join(f"<code>{html.escape(t)}</code>" if cmd else html.escape(t) for cmd, t in step_parts(step))


def report_text(document: dict[str, Any]) -> str:
    """The one way a report (Statement) is shown to a person: `run --dry-run` and the page."""
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True)


def page_name(lang: str) -> str:
    return f"selfcheck.{lang}.html"


def render_html(policy: Policy, facts: dict[str, Any], evaluation: Evaluation, lang: str, *,
                statement: dict[str, Any] | None = None, languages: tuple[str, ...] = (),
                deadlines: dict[str, Any] | None = None) -> str:
    """A standalone page (no scripts, no external resources); every value escaped.

    ``statement``: the exact Statement `auditagent run` would sign (an enrolled computer);
    without it, the facts and results it would carry. ``languages``: the sibling pages
    (``selfcheck.<lang>.html``) to link to."""
    e = html.escape
    titles = _titles(policy)
    deadlines = deadlines or {}
    items = []
    for r in evaluation.results:
        title = titles.get(r.check_id, {}).get(lang, r.check_id)
        steps = r.remediation.get(lang) or r.remediation.get("en") or []
        fix = ""
        if r.status in ("fail", "unknown") and steps:
            fix = (f"<div><strong>{e(translate('heading.how_to_fix', None, lang))}</strong><ol>"
                   + "".join(f"<li>{_html_step(s)}</li>" for s in steps) + "</ol>" + _html_others(r, lang) + "</div>")
        items.append(
            f'<li class="{e(r.status)}" id="check-{e(r.check_id)}"><span class="sym" aria-hidden="true">'
            f'{SYMBOLS[r.status]}</span><strong>{e(title)}</strong> '
            f'<span class="sev">{e(translate("status." + r.status, None, lang))} · '
            f'{e(translate("severity." + r.severity, None, lang))}</span>'
            f'<div>{e(reason(r, lang))}</div>'
            + (f'<p class="due"><strong>{e(fix_by(deadlines[r.check_id], lang))}</strong></p>'
               if r.status in ("fail", "unknown") and r.check_id in deadlines else "") + f'{fix}</li>')
    if statement is not None:
        lead, shown = translate("html.report_lead", None, lang), report_text(statement)
    else:
        lead = translate("html.report_not_enrolled", None, lang)
        shown = report_text({"facts": facts, "results": evaluation.to_dict(with_remediation=False)["results"],
                             "verdict": evaluation.verdict})
    nav = ""
    if languages:
        links = " · ".join(
            f'<a href="{e(page_name(other))}" hreflang="{e(other)}" lang="{e(other)}"'
            + (' aria-current="page"' if other == lang else "") + f'>{e(translate("lang." + other, None, other))}</a>'
            for other in languages)
        nav = f'<nav class="langs" aria-label="{e(translate("html.languages", None, lang))}">{links}</nav>'
    return f"""<!doctype html>
<html lang="{e(lang)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(translate('heading.title', None, lang))}</title><style>{_CSS}</style></head>
<body>{nav}<h1>{e(translate('heading.title', None, lang))}</h1>
<p class="verdict {e(evaluation.verdict)}" id="verdict">{e(translate('verdict.' + evaluation.verdict, None, lang))}</p>
<p class="meta">{e(translate('heading.policy', None, lang))}: {e(policy.title.get(lang, policy.id))}
({e(translate('heading.version', None, lang))} {e(policy.version)}) · {e(translate('heading.checked_at', None, lang))}:
<time datetime="{e(evaluation.collected_at)}">{e(local_time(evaluation.collected_at, lang))}</time></p>
<p class="meta">{e(summary_line(evaluation, lang))}</p>
<ul class="checks">{''.join(items)}</ul>
<details id="report"><summary>{e(translate('heading.report', None, lang))}</summary><p>{_html_step(lead)}</p>
<pre id="report-json">{e(shown)}</pre></details>
</body></html>
"""
