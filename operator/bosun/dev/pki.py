"""Certificates and keys for the local control plane.

Creates one certificate authority, the API server's serving certificate, client certificates
for the admin user and the controller manager, and the service-account signing key pair, all as
PEM files in one folder. Nothing here is meant for production: the keys live on local disk.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import oid

__all__ = ["Key", "Pki", "create", "issue_client"]

_VALIDITY = datetime.timedelta(days=365)

Key = ec.EllipticCurvePrivateKey


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths of the PEM files making up the local control plane's PKI."""

    folder: pathlib.Path

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> pathlib.Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> pathlib.Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> pathlib.Path:
        return self.folder / "apiserver.key"

    @property
    def sa_key(self) -> pathlib.Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> pathlib.Path:
        return self.folder / "sa.pub"

    def client_cert(self, name: str) -> pathlib.Path:
        return self.folder / f"{name}.crt"

    def client_key(self, name: str) -> pathlib.Path:
        return self.folder / f"{name}.key"


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: Key | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: pathlib.Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, *organizations: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(oid.NameOID.COMMON_NAME, common_name)]
    attrs += [x509.NameAttribute(oid.NameOID.ORGANIZATION_NAME, o) for o in organizations if o]
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _client(pki: Pki, stem: str, subject: x509.Name, ca_name: x509.Name, ca_key: Key) -> None:
    key = _new_key()
    cert = (
        _builder(subject, ca_name, key)
        .add_extension(x509.ExtendedKeyUsage([oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.client_key(stem), key)
    _write_cert(pki.client_cert(stem), cert)


def issue_client(pki: Pki, stem: str, user: str, groups: tuple[str, ...] = ()) -> None:
    """Sign a client certificate for ``user`` in ``groups`` with the existing CA: a real
    identity the API server authenticates (the common name is the user, each organization a
    group), for tests that act as a tenant rather than the admin."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the local CA key is not an EC key")
    _client(pki, stem, _name(user, *groups), ca_cert.subject, ca_key)


def create(folder: pathlib.Path, client_users: dict[str, tuple[str, str | None]]) -> Pki:
    """Write a fresh PKI into ``folder``.

    ``client_users`` maps a file stem to (common name, organization) of a client certificate;
    the API server takes the common name as the user and the organization as its group.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)

    ca_key = _new_key()
    ca_name = _name("bosun-local-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca_cert)

    serving_key = _new_key()
    sans: list[x509.GeneralName] = [
        x509.DNSName(name)
        for name in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1", "10.0.0.1")]
    serving = (
        _builder(_name("kube-apiserver"), ca_name, serving_key)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.serving_key, serving_key)
    _write_cert(pki.serving_cert, serving)

    for stem, (common_name, organization) in client_users.items():
        _client(pki, stem, _name(common_name, organization), ca_name, ca_key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
