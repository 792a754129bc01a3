"""Message catalogs (sv, da, en) and language choice for the staff self-check."""
from __future__ import annotations

import functools
import locale
import os
from typing import Any

from auditagent.i18n.plural import count_in, plural_key
from auditagent.textsafe import fill

LANGS = ("sv", "da", "en")
DEFAULT = "en"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    from importlib import resources  # both only when a message is shown: the hourly run shows none

    import yaml

    text = resources.files(__name__).joinpath(f"{lang}.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}


def detect_language(env: dict[str, str] | None = None) -> str:
    """From the locale (LC_ALL, LC_MESSAGES, LANG, LANGUAGE; then the OS locale): sv, da or en."""
    env = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = env.get(var, "")
        for part in value.split(":"):
            code = part.split("_")[0].split(".")[0].lower()
            if code in LANGS:
                return code
            if code in ("nb", "nn", "no"):  # Norwegian readers manage Danish best
                return "da"
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            break
    if env is os.environ:
        try:
            code = (locale.getlocale()[0] or "").split("_")[0].lower()
            if code in LANGS:
                return code
        except ValueError:
            pass
    return DEFAULT


def _fmt_value(value: Any, lang: str) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
        return text.replace(".", ",") if lang in ("sv", "da") else text
    if isinstance(value, list):
        return ", ".join(_fmt_value(v, lang) for v in value)
    if value is None:
        return "-"
    return str(value)


def known(code: Any) -> bool:
    """Whether ``code`` is a message of the catalogs (English is the complete one)."""
    return isinstance(code, str) and any(isinstance(catalog(DEFAULT).get(k), str) for k in (code, f"{code}.other"))


def reason_text(text: str, lang: str = DEFAULT) -> str:
    """A probe's reason (auditagent/reasons.py) in ``lang``: the code translated with its
    subject; the detail (the OS's own, untranslated words) is left to IT's views. A string
    that is not a coded reason comes back as it is (tests/test_reasons.py keeps the probes
    from emitting one)."""
    from auditagent.reasons import parse

    parsed = parse(text)
    if parsed is None:
        return text
    code, subject, _detail = parsed
    template = catalog(lang).get(f"reason.{code}") or catalog(DEFAULT).get(f"reason.{code}")
    if not isinstance(template, str):
        return text
    return fill(template, {"subject": subject or ""})


def _reasons_value(value: Any, lang: str) -> str:
    items = value if isinstance(value, list) else [value] if value else []
    return "; ".join(reason_text(str(r), lang) for r in items) or "-"


def translate(code: str, args: dict[str, Any] | None = None, lang: str = DEFAULT) -> str:
    """The message for ``code`` in ``lang`` (English as fallback). An unknown code is
    returned as it is, never used as a template: codes and arguments may come from a
    device's report (see :mod:`auditagent.textsafe`). Arguments named ``reasons``/``reason``
    are probe reasons and are translated too; the others are put in words first
    (:mod:`auditagent.i18n.wording`: durations, product names, the OS name once)."""
    from auditagent.i18n.wording import prepare

    def find(key: str) -> str | None:
        value = catalog(lang).get(key) or catalog(DEFAULT).get(key)
        return value if isinstance(value, str) else None

    code, args = prepare(str(code), dict(args or {}), lang, find)
    template = find(code)
    if template is None and count_in(args) is not None:  # a count message: its form for the count
        template = find(plural_key(code, count_in(args)))
    if template is None:
        return str(code)
    values = {str(k): _reasons_value(v, lang) if k in ("reasons", "reason") else _fmt_value(v, lang)
              for k, v in args.items()}
    if "how" in values:
        values["how"] = translate(f"how.{values['how']}", None, lang)
    return fill(template, values)
