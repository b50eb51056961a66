"""notary_bridge.pki: the certificates say what outside verifiers require of them."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from notary_bridge import pki


@pytest.mark.parametrize("key_type", pki.KEY_TYPES)
def test_ca_is_a_critical_ca_with_key_ids(key_type: pki.KeyType) -> None:
    _, pem = pki.make_ca("Root", key_type)
    cert = x509.load_pem_x509_certificate(pem)
    bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    cert.verify_directly_issued_by(cert)


@pytest.mark.parametrize("key_type", pki.KEY_TYPES)
def test_tsa_cert_has_critical_timestamping_eku(key_type: pki.KeyType) -> None:
    ca_key, ca_pem = pki.make_ca("Root", key_type)
    _, pem = pki.make_tsa_cert(ca_key, ca_pem, "TSA", key_type)
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert not any(e.oid == ExtensionOID.CRL_DISTRIBUTION_POINTS for e in cert.extensions)
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now - dt.timedelta(hours=23)
    assert cert.not_valid_after_utc >= now + dt.timedelta(days=3640)


def test_signer_cert_is_for_documents_not_timestamps() -> None:
    ca_key, ca_pem = pki.make_ca("Root")
    _, pem = pki.make_signer_cert(ca_key, ca_pem, "Packet Signer")
    cert = x509.load_pem_x509_certificate(pem)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert ExtendedKeyUsageOID.TIME_STAMPING not in eku


def test_serials_are_random_and_positive() -> None:
    ca_key, ca_pem = pki.make_ca("Root")
    certs = [x509.load_pem_x509_certificate(pki.make_tsa_cert(ca_key, ca_pem, "T")[1]) for _ in range(3)]
    serials = {c.serial_number for c in certs}
    assert len(serials) == 3 and all(0 < s < 1 << 160 for s in serials)


@pytest.mark.parametrize("key_type", pki.KEY_TYPES)
def test_crl_is_signed_and_lists_revoked(key_type: pki.KeyType) -> None:
    ca_key, ca_pem = pki.make_ca("Root", key_type)
    ca = x509.load_pem_x509_certificate(ca_pem)
    empty = x509.load_pem_x509_crl(pki.make_crl(ca_key, ca_pem))
    assert empty.is_signature_valid(ca.public_key())
    assert len(empty) == 0
    assert empty.next_update_utc is not None
    assert empty.next_update_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    crl = x509.load_pem_x509_crl(pki.make_crl(ca_key, ca_pem, revoked=[1234]))
    assert crl.get_revoked_certificate_by_serial_number(1234) is not None


def test_unknown_key_type_is_refused() -> None:
    with pytest.raises(ValueError, match="want one of"):
        pki.make_ca("Root", "dsa-1024")  # type: ignore[arg-type]
