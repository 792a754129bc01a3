"""Every badge and coloured text in the dashboard's stylesheet reads at 4.5:1 or better
(WCAG 2.1 AA for normal text), computed from the CSS itself, so a badge that no test
page happens to show (an expired exception, an unknown status) is held to it too."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[1] / "server" / "static" / "dashboard.css").read_text(encoding="utf-8")
HEX = r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b"
VARS = dict(re.findall(r"--([\w-]+):\s*(" + HEX + ")", CSS))


def colour(value: str) -> str:
    value = value.strip()
    m = re.fullmatch(r"var\(--([\w-]+)\)", value)
    return VARS[m.group(1)] if m else value


def luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    if len(hex_colour) == 4:  # #fff
        hex_colour = "#" + "".join(c * 2 for c in hex_colour[1:])
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rules_with_text_on_background() -> list[tuple[str, str, str]]:
    out = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS):
        bg = re.search(r"background:\s*(" + HEX + r"|var\(--[\w-]+\))", body)
        fg = re.search(r"(?<![-\w])color:\s*(" + HEX + r"|var\(--[\w-]+\))", body)
        if bg and fg:
            out.append((selector.strip(), colour(fg.group(1)), colour(bg.group(1))))
    return out


def test_contrast_formula() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#a86400", "#fdf0dc") < 4.5  # the old "Inaktuell" badge (4.16:1)


@pytest.mark.parametrize("selector, fg, bg", rules_with_text_on_background())
def test_text_on_its_background(selector: str, fg: str, bg: str) -> None:
    assert contrast(fg, bg) >= 4.5, f"{selector}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"


@pytest.mark.parametrize("name", ["ink", "muted", "ready", "notready", "stale", "never", "exc"])
def test_text_colours_on_page_and_card(name: str) -> None:
    for bg in (VARS["bg"], VARS["card"], "#eef1f5"):  # page, card, table header
        assert contrast(VARS[name], bg) >= 4.5, f"--{name} on {bg}: {contrast(VARS[name], bg):.2f}:1"


def test_every_badge_is_checked() -> None:
    badges = {s for s, _, _ in rules_with_text_on_background() if ".badge" in s}
    assert len(badges) >= 6
