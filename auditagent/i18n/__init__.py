"""Message catalogs (sv, da, en) and language choice for the staff self-check."""
from __future__ import annotations

import functools
import locale
import os
from importlib import resources
from typing import Any

import yaml

from auditagent.textsafe import fill

LANGS = ("sv", "da", "en")
DEFAULT = "en"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
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
    return isinstance(code, str) and isinstance(catalog(DEFAULT).get(code), str)


def translate(code: str, args: dict[str, Any] | None = None, lang: str = DEFAULT) -> str:
    """The message for ``code`` in ``lang`` (English as fallback). An unknown code is
    returned as it is, never used as a template: codes and arguments may come from a
    device's report (see :mod:`auditagent.textsafe`)."""
    template = catalog(lang).get(code) or catalog(DEFAULT).get(code)
    if not isinstance(template, str):
        return str(code)
    values = {str(k): _fmt_value(v, lang) for k, v in (args or {}).items()}
    if "how" in values:
        values["how"] = translate(f"how.{values['how']}", None, lang)
    return fill(template, values)
