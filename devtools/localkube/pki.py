"""Certificates and keys for one local cluster, generated fresh each start.

One CA signs the API server's serving certificate (valid for 127.0.0.1 and localhost) and the
client certificates: the admin (group `system:masters`, the one identity RBAC never refuses)
and one per control-plane component, so audit-style errors name the component. A second CA, the
front proxy's, signs only the client certificate the API server presents when it proxies a
request to an aggregated API (`--proxy-client-*`); extension servers trust the user headers of
a request only when that CA vouches for its sender (`--requestheader-*`), so it must not be the
CA every other client certificate comes from. A separate RSA key pair signs and verifies
service-account tokens. Keys are EC P-256 where the consumer allows it (fast to generate); the
service-account key is RSA because every token verifier accepts it.

`CertificateAuthority` is public: add-ons (an extension API server, KEDA) make their own.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["FRONT_PROXY_CLIENT", "CertificateAuthority", "ClientCert", "Pki", "create_pki"]

_VALID_FOR = datetime.timedelta(days=30)

FRONT_PROXY_CLIENT = "front-proxy-client"
"""Common name of the API server's proxy client certificate (`--requestheader-allowed-names`)."""


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key, as files and as PEM bytes (for kubeconfig data)."""

    cert_file: Path
    key_file: Path
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    ca_pem: bytes
    serving_cert_file: Path
    serving_key_file: Path
    sa_private_key_file: Path
    sa_public_key_file: Path
    admin: ClientCert
    controller_manager: ClientCert
    scheduler: ClientCert
    kwok: ClientCert
    front_proxy_ca_file: Path
    front_proxy_client: ClientCert


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


class CertificateAuthority:
    """A self-signed CA in memory that issues leaf certificates (EC P-256, 30 days)."""

    def __init__(self, common_name: str = "localkube-ca") -> None:
        self.key = _ec_key()
        now = datetime.datetime.now(datetime.UTC)
        name = _name(common_name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
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
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier | list[x509.ObjectIdentifier],
        sans: list[x509.GeneralName] | None = None,
    ) -> tuple[bytes, bytes]:
        """A leaf certificate and its key, both PEM; `usage`: one extended key usage or more."""
        key = _ec_key()
        now = datetime.datetime.now(datetime.UTC)
        usages = usage if isinstance(usage, list) else [usage]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def issue_files(
        self,
        directory: Path,
        stem: str,
        common_name: str,
        *,
        usages: list[x509.ObjectIdentifier],
        organization: str | None = None,
        hosts: list[str] | None = None,
    ) -> ClientCert:
        """`issue` written to `<stem>.crt` and `<stem>.key`; `hosts`: IP addresses and DNS names
        the certificate is valid for (a serving certificate)."""
        sans: list[x509.GeneralName] = []
        for host in hosts or []:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        cert_pem, key_pem = self.issue(_name(common_name, organization), usages, sans)
        return ClientCert(
            cert_file=_write(directory / f"{stem}.crt", cert_pem),
            key_file=_write(directory / f"{stem}.key", key_pem),
            cert_pem=cert_pem,
            key_pem=key_pem,
        )


def _client(
    ca: CertificateAuthority, directory: Path, stem: str, user: str, group: str | None
) -> ClientCert:
    return ca.issue_files(
        directory, stem, user, usages=[ExtendedKeyUsageOID.CLIENT_AUTH], organization=group
    )


def create_pki(directory: Path, service_ip: str) -> Pki:
    """Write a fresh CA, serving cert, client certs and service-account keys into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority()
    ca_pem = ca.pem
    front_proxy_ca = CertificateAuthority("localkube-front-proxy-ca")
    serving_cert, serving_key = ca.issue(
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(service_ip)),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_public = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Pki(
        ca_file=_write(directory / "ca.crt", ca_pem),
        ca_pem=ca_pem,
        serving_cert_file=_write(directory / "apiserver.crt", serving_cert),
        serving_key_file=_write(directory / "apiserver.key", serving_key),
        sa_private_key_file=_write(directory / "sa.key", _key_pem(sa_key)),
        sa_public_key_file=_write(directory / "sa.pub", sa_public),
        admin=_client(ca, directory, "admin", "localkube-admin", "system:masters"),
        controller_manager=_client(
            ca, directory, "controller-manager", "system:kube-controller-manager", None
        ),
        scheduler=_client(ca, directory, "scheduler", "system:kube-scheduler", None),
        kwok=_client(ca, directory, "kwok", "localkube-kwok", "system:masters"),
        front_proxy_ca_file=_write(directory / "front-proxy-ca.crt", front_proxy_ca.pem),
        front_proxy_client=_client(
            front_proxy_ca, directory, "front-proxy-client", FRONT_PROXY_CLIENT, None
        ),
    )
