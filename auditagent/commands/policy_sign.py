"""``auditagent policy keygen | sign | verify``: the organisation's policy key.

* ``policy keygen --out DIR`` makes the organisation's policy-signing key pair
  (``policy-signing.key``, 0600 — keep it offline; ``policy-signing.pub.pem`` goes
  into every agent's config as ``policy_public_key``).
* ``policy sign --key KEY FILE [--out FILE.signed.json]`` validates the policy, then
  signs its exact bytes (a DSSE envelope) for upload to the collector.
* ``policy verify --key PUB FILE.signed.json`` checks a signed policy as an agent would.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from auditagent.commands import CommandError, add_common


def register(psub: argparse._SubParsersAction) -> None:
    k = psub.add_parser("keygen", help="make the organisation's policy-signing key pair")
    add_common(k)
    k.add_argument("--out", metavar="DIR", required=True, help="folder for policy-signing.key and .pub.pem")
    k.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    k.set_defaults(func=cmd_keygen)

    s = psub.add_parser("sign", help="validate and sign a policy with the organisation's policy key")
    add_common(s)
    s.add_argument("--key", metavar="KEY", required=True, help="the policy-signing private key (PEM)")
    s.add_argument("--out", metavar="FILE", help="where to write the envelope (default: FILE.signed.json)")
    s.add_argument("file", metavar="FILE", help="policy YAML")
    s.set_defaults(func=cmd_sign)

    v = psub.add_parser("verify", help="verify a signed policy against the organisation's public key")
    add_common(v)
    v.add_argument("--key", metavar="PUB", required=True, help="policy-signing public key (PEM)")
    v.add_argument("file", metavar="FILE", help="signed policy (.signed.json)")
    v.set_defaults(func=cmd_verify)


def default_out(path: Path) -> Path:
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return path.with_name(name + ".signed.json")


def cmd_keygen(args: argparse.Namespace) -> int:
    from auditagent.keys import KeyProblem, generate_policy_keypair

    try:
        priv, pub, kid = generate_policy_keypair(Path(args.out), force=args.force)
    except KeyProblem as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write into {args.out}: {exc.strerror or exc}") from None
    print(f"private key: {priv}  (0600 — keep it offline; it signs every policy)")
    print(f"public key:  {pub}  (set policy_public_key to it in every agent.yaml)")
    print(f"key id:      {kid}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from auditagent.keys import KeyProblem, load_private_key_file
    from auditagent.policy import PolicyError, load_policy
    from auditagent.report import keyid, sign_policy

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        policy = load_policy(path, text=data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not UTF-8 text") from None
    except PolicyError as exc:
        raise CommandError(f"{path} is not a valid policy; not signed:\n" +
                           "\n".join(f"  {p}" for p in exc.problems)) from None
    if policy.extends:
        # Sign the resolved policy, so the signature covers every check: an agent must not
        # complete a signed policy from its own unsigned local copy of the parent.
        import yaml

        data = ("# Resolved from " + path.name + " (extends " + ", ".join(policy.extends) + ") by "
                "auditagent policy sign.\n" + yaml.safe_dump(policy.to_dict(), allow_unicode=True, sort_keys=False)
                ).encode("utf-8")
        print(f"note: {path} extends {', '.join(policy.extends)}; signing the resolved policy "
              f"({len(policy.checks)} checks)", file=sys.stderr)
    try:
        key = load_private_key_file(Path(args.key))
    except KeyProblem as exc:
        raise CommandError(str(exc)) from None
    envelope = sign_policy(data, key)
    out = Path(args.out) if args.out else default_out(path)
    try:
        out.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"signed {policy.id} {policy.version} (sha256 {policy.digest[:16]}…) with key "
          f"{keyid(key.public_key())[:16]}… → {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from auditagent.keys import KeyProblem, load_public_key
    from auditagent.policy import PolicyError
    from auditagent.policy_cache import verify_policy_envelope

    try:
        pub = load_public_key(args.key, where="--key")
    except KeyProblem as exc:
        raise CommandError(str(exc)) from None
    try:
        envelope = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {args.file} as a signed policy: {exc}") from None
    try:
        policy, _ = verify_policy_envelope(envelope, pub, args.file)
    except PolicyError as exc:
        print("\n".join(f"✘ {p}" for p in exc.problems), file=sys.stderr)
        return 1
    print(f"✔ {args.file}: {policy.id} {policy.version}, signature valid, sha256 {policy.digest}")
    return 0
