"""Issuing and reading certificates (real cryptography, no I/O)."""

from __future__ import annotations

import datetime

import pytest

from xlinefed import certificates

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def test_a_member_certificate_covers_its_names_and_is_signed_by_the_ca() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    leaf = certificates.issue(
        ca, "fed-a-0", names=["fed-a-0.example", "127.0.0.3"], now=NOW, days=90
    )
    facts = certificates.check_pair(leaf.cert, leaf.key, ca.cert, now=NOW)
    assert facts.common_name == "fed-a-0"
    assert facts.missing(["FED-A-0.example", "127.0.0.3"]) == []
    assert facts.missing(["fed-b-0.example", "127.0.0.4"]) == ["fed-b-0.example", "127.0.0.4"]


def test_renewal_is_due_after_two_thirds_of_the_validity() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    facts = certificates.read(certificates.issue(ca, "m", now=NOW, days=90).cert)
    assert not facts.renewal_due(NOW + 59 * DAY)
    assert facts.renewal_due(NOW + 61 * DAY)


def test_a_leaf_never_outlives_its_ca() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=10)
    facts = certificates.read(certificates.issue(ca, "m", now=NOW, days=90).cert)
    assert facts.not_after <= NOW + 10 * DAY


def test_check_pair_names_what_is_wrong() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    other = certificates.new_authority("other-ca", now=NOW, days=3650)
    leaf = certificates.issue(ca, "m", now=NOW, days=90)
    stranger = certificates.issue(other, "m", now=NOW, days=90)
    with pytest.raises(certificates.CertificateError, match="does not belong"):
        certificates.check_pair(leaf.cert, stranger.key, ca.cert, now=NOW)
    with pytest.raises(certificates.CertificateError, match="not signed by the CA"):
        certificates.check_pair(stranger.cert, stranger.key, ca.cert, now=NOW)
    with pytest.raises(certificates.CertificateError, match="not now"):
        certificates.check_pair(leaf.cert, leaf.key, ca.cert, now=NOW + 91 * DAY)
    with pytest.raises(certificates.CertificateError, match="not a PEM certificate"):
        certificates.read(b"garbage")


def test_a_wildcard_covers_exactly_one_more_label() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    names = ["*.member1.fed.ns.svc.clusterset.local"]
    facts = certificates.read(certificates.issue(ca, "c", names=names, now=NOW, days=9).cert)
    assert facts.missing(["fed-member1-0.member1.fed.ns.svc.clusterset.local"]) == []
    assert facts.missing(["member1.fed.ns.svc.clusterset.local"]) != []
    assert facts.missing(["a.fed-member1-0.member1.fed.ns.svc.clusterset.local"]) != []
    assert facts.missing(["fed-member2-0.member2.fed.ns.svc.clusterset.local"]) != []


def test_a_ca_bundle_during_rotation_accepts_both_and_its_fingerprint_is_stable() -> None:
    old = certificates.new_authority("old-ca", now=NOW, days=3650)
    new = certificates.new_authority("new-ca", now=NOW, days=3650)
    bundle = old.cert + new.cert
    for ca in (old, new):
        leaf = certificates.issue(ca, "m", now=NOW, days=9)
        certificates.check_pair(leaf.cert, leaf.key, bundle, now=NOW)
    other = certificates.new_authority("other", now=NOW, days=3650)
    stray = certificates.issue(other, "m", now=NOW, days=9)
    with pytest.raises(certificates.CertificateError, match="not signed by the CA"):
        certificates.check_pair(stray.cert, stray.key, bundle, now=NOW)
    assert certificates.fingerprint(bundle) == certificates.fingerprint(b"\n" + bundle + b"\n")
    assert certificates.fingerprint(bundle) != certificates.fingerprint(old.cert)
