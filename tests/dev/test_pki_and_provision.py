"""Unit tests of the local control plane's PKI and build recipe."""

from __future__ import annotations

import ipaddress
import pathlib

import pytest
from cryptography import x509
from cryptography.x509 import oid

from bosun.dev import pki, provision


def test_pki_certificates_chain_to_the_ca_with_the_right_identities(tmp_path: pathlib.Path) -> None:
    made = pki.create(tmp_path, {"admin": ("bosun-admin", "system:masters")})
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(made.serving_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(made.client_cert("admin").read_bytes())
    for cert in (serving, admin):
        cert.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    subject = admin.subject
    assert subject.get_attributes_for_oid(oid.NameOID.COMMON_NAME)[0].value == "bosun-admin"
    assert subject.get_attributes_for_oid(oid.NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )
    assert made.ca_key.stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in made.sa_pub.read_bytes()


def test_kubernetes_wrapper_pins_every_staging_module_to_the_matching_release() -> None:
    gomod = provision.kubernetes_wrapper_gomod("v1.34.4")
    assert "require k8s.io/kubernetes v1.34.4" in gomod
    replaces = [line for line in gomod.splitlines() if line.startswith("replace ")]
    assert len(replaces) == len(provision.STAGING_MODULES) == 31
    assert "replace k8s.io/client-go => k8s.io/client-go v0.34.4" in replaces


def test_kubebuilder_assets_take_precedence(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert provision.find_binary("etcd") == fake


def test_missing_binaries_without_build_name_the_remedy(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("BOSUN_CACHE_DIR", str(tmp_path))
    with pytest.raises(provision.ProvisionError, match="KUBEBUILDER_ASSETS"):
        provision.ensure(["etcd"], build=False)
