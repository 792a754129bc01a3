"""``auditagent-collector ca``: the readiness CA (server/readiness_ca.py).

    auditagent-collector ca init --dir DIR [--organisation NAME]   create it (keys 0600)
    auditagent-collector ca rotate --dir DIR [--overlap 24h]        new key: trusted now, signing after the overlap
    auditagent-collector ca show --dir DIR                          generations, which one signs
    auditagent-collector ca bundle --dir DIR [--out FILE]           the CA certificates gateways must trust now
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from server.cli_parsers import action, command_group
from server.readiness_ca import (CA_ENV, DEFAULT_OVERLAP, MAX_LIFETIME, MIN_LIFETIME, CAProblem, ReadinessCA,
                                 init_ca, rotate_ca)
from server.store import parse_duration


def certificate_lifetime(text: str | None) -> dt.timedelta | None:
    """``--certificate-lifetime``: None (the unit's max report age) or 1 s … 24 h."""
    if text is None:
        return None
    life = parse_duration(text)
    if not MIN_LIFETIME <= life <= MAX_LIFETIME:
        raise ValueError(f"--certificate-lifetime {text}: must be between 1s and 24h")
    return life


def _dir(args: argparse.Namespace) -> Path:
    import os

    d = args.dir or os.environ.get(CA_ENV)
    if not d:
        raise ValueError(f"--dir DIR (or ${CA_ENV}) names the readiness CA folder")
    return Path(d)


def _problem(exc: Exception) -> int:
    """One line, exit 2: a CA folder that cannot be used is an error, not a refusal."""
    if isinstance(exc, OSError):
        exc = CAProblem(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    print(f"auditagent-collector: {exc}", file=sys.stderr)
    return 2


def cmd_init(args: argparse.Namespace) -> int:
    try:
        ca = init_ca(_dir(args), args.organisation)
    except (CAProblem, OSError) as exc:
        return _problem(exc)
    g = ca.generations()[-1]
    print(f"readiness CA created in {ca.directory} (generation {g.number}, key {g.key_path} mode 0600)")
    print(f"give gateways its certificate: auditagent-collector ca bundle --dir {ca.directory} --out readiness-ca.pem")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    try:
        g = rotate_ca(_dir(args), parse_duration(args.overlap))
    except (CAProblem, OSError) as exc:
        return _problem(exc)
    print(f"generation {g.number} created; it is in the trust bundle now and signs from "
          f"{g.activate_at.isoformat()}. Update every gateway's bundle before then.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        ca = ReadinessCA(_dir(args))
        now = dt.datetime.now(dt.timezone.utc)
        signer = ca.signer(now).number
        trusted = {g.number for g in ca.trusted(now)}
    except (CAProblem, OSError) as exc:
        return _problem(exc)
    for g in ca.generations():
        role = "signing" if g.number == signer else ("pending" if g.activate_at > now else
                                                       ("trusted" if g.number in trusted else "retired"))
        fp = g.certificate.fingerprint(hashes.SHA256()).hex()
        print(f"{g.number}  {role:8}  activate {g.activate_at.isoformat()}  "
              f"expires {g.certificate.not_valid_after_utc.date()}  sha256 {fp}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    try:
        pem = ReadinessCA(_dir(args)).bundle_pem()
    except (CAProblem, OSError) as exc:
        return _problem(exc)
    if args.out:
        Path(args.out).write_bytes(pem)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(pem.decode("ascii"))
    return 0


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ca = command_group(sub, "ca", "the readiness CA (certificates that open remote access)")
    dir_args = argparse.ArgumentParser(add_help=False)
    dir_args.add_argument("--dir", default=None, help=f"the CA folder (default ${CA_ENV})")
    p = action(ca, "init", cmd_init, "create the readiness CA (key 0600)", [dir_args])
    p.add_argument("--organisation", default=None, help="O= in the CA's name")
    p = action(ca, "rotate", cmd_rotate, "a new CA key, trusted now, signing after the overlap", [dir_args])
    p.add_argument("--overlap", default=f"{int(DEFAULT_OVERLAP.total_seconds() // 3600)}h",
                   help="time gateways get to trust the new key before it signs (default 24h)")
    action(ca, "show", cmd_show, "list the CA generations", [dir_args])
    p = action(ca, "bundle", cmd_bundle, "the CA certificates gateways must trust now (PEM)", [dir_args])
    p.add_argument("--out", default=None)
