"""The readiness CA on disk (server/readiness_ca.py): created with its key 0600 in a 0700
folder, rotated with overlap (the new key trusted before it signs, the old one trusted
until its certificates have expired), and the client certificates it signs: subject and
SAN URIs naming device, unit and policy digest, client-auth only, never a CA."""
from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.readiness_ca import (MAX_LIFETIME, CAProblem, ReadinessCA, acceptable_public_key, certificate_device_id,
                                 init_ca, rotate_ca)

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
DIGEST = "ab" * 32


def test_init_keeps_the_key_owner_only_and_refuses_a_second_init(tmp_path):
    ca = init_ca(tmp_path / "ca", "Kommunen", now=T0)
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ca" / "ca-1.key").stat().st_mode) == 0o600
    g = ca.signer(T0)
    assert g.number == 1
    assert g.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert g.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Kommunen"
    with pytest.raises(CAProblem, match="already exists"):
        init_ca(tmp_path / "ca")


def test_a_key_readable_by_others_is_refused_at_start(tmp_path):
    init_ca(tmp_path / "ca", now=T0)
    (tmp_path / "ca" / "ca-1.key").chmod(0o644)
    with pytest.raises(CAProblem, match="readable by others"):
        ReadinessCA(tmp_path / "ca")


def test_missing_folder_says_how_to_create_it(tmp_path):
    with pytest.raises(CAProblem, match="ca init"):
        ReadinessCA(tmp_path / "nothing")


def test_rotation_overlaps_in_both_directions(tmp_path):
    ca = init_ca(tmp_path / "ca", now=T0)
    overlap = dt.timedelta(hours=24)
    new = rotate_ca(tmp_path / "ca", overlap, now=T0 + dt.timedelta(hours=1))
    assert new.number == 2
    just_after = T0 + dt.timedelta(hours=2)
    # Trusted at once, but generation 1 still signs until the overlap is over.
    assert [g.number for g in ca.trusted(just_after)] == [1, 2]
    assert ca.signer(just_after).number == 1
    switch = new.activate_at
    assert ca.signer(switch).number == 2
    # Generation 1 stays trusted until every certificate it signed has expired …
    assert [g.number for g in ca.trusted(switch + MAX_LIFETIME - dt.timedelta(seconds=1))] == [1, 2]
    # … and not after.
    assert [g.number for g in ca.trusted(switch + MAX_LIFETIME)] == [2]
    assert ca.bundle_pem(switch + MAX_LIFETIME).count(b"BEGIN CERTIFICATE") == 1


def test_issued_certificate_names_device_unit_and_policy(tmp_path):
    ca = init_ca(tmp_path / "ca", now=T0)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = T0 + dt.timedelta(hours=8)
    cert = ca.issue(key.public_key(), device_id="dev-1", unit="Socialförvaltningen/IFO", policy_sha256=DIGEST,
                    not_after=not_after, now=T0)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Socialförvaltningen/IFO"
    assert cert.subject.get_attributes_for_oid(NameOID.DN_QUALIFIER)[0].value == "policy-sha256:" + DIGEST
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == ["urn:auditagent:device:dev-1", "urn:auditagent:unit:Socialf%C3%B6rvaltningen/IFO",
                    "urn:auditagent:policy:sha256:" + DIGEST]
    assert certificate_device_id(cert) == "dev-1"
    assert cert.not_valid_after_utc == not_after
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(ca.signer(T0).certificate)
    assert ca.issued_by_us(cert, T0)


def test_a_certificate_of_another_ca_is_not_ours(tmp_path):
    ours = init_ca(tmp_path / "ours", now=T0)
    other = init_ca(tmp_path / "other", now=T0)
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = other.issue(key.public_key(), device_id="dev-1", unit="U", policy_sha256=None,
                          not_after=T0 + dt.timedelta(hours=1), now=T0)
    # Same issuer name, other key: the signature decides.
    assert foreign.issuer == ours.signer(T0).certificate.subject
    assert not ours.issued_by_us(foreign, T0)


def test_key_types():
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    assert acceptable_public_key(ec.generate_private_key(ec.SECP256R1()).public_key()) is None
    assert "P-256" in acceptable_public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
    assert acceptable_public_key(rsa.generate_private_key(65537, 2048).public_key()) is None
    assert "2048" in acceptable_public_key(rsa.generate_private_key(65537, 1024).public_key())
    assert acceptable_public_key(ed25519.Ed25519PrivateKey.generate().public_key()) is not None
