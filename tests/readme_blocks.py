"""The shell blocks of a Markdown file, split into the commands a person would type."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    section: str  # the nearest "## " heading above it
    lines: tuple[str, ...]


def shell_blocks(markdown: str) -> list[Block]:
    blocks, section, inside, current = [], "", False, []
    for line in markdown.splitlines():
        if not inside and line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            if inside:
                blocks.append(Block(section, tuple(current)))
                inside, current = False, []
            elif line.strip() in ("```sh", "```bash", "```shell"):
                inside = True
            continue
        if inside:
            current.append(line)
    return blocks


def commands(block: Block) -> list[str]:
    """Lines joined at trailing backslashes; blank and comment-only lines left out."""
    out, pending = [], ""
    for line in block.lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        cmd = (pending + line.strip()).strip()
        pending = ""
        if cmd and not cmd.startswith("#"):
            out.append(cmd)
    return out


def without_comment(command: str) -> str:
    """The command without its trailing ``# …`` remark (outside quotes)."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command


def words(command: str) -> list[str]:
    return re.findall(r"\S+", without_comment(command))
