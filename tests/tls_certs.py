"""A certificate authority made on the spot (cryptography), for the mutual-TLS tests and
benchmarks: server and client certificates, expired ones, another CA, a revocation list."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(
    folder: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> None:
    (folder / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class CA:
    """A CA writing `<name>.pem`/`<name>.key` into `folder`."""

    def __init__(self, folder: Path, name: str = "ca") -> None:
        self.folder, self.name = folder, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(f"akida test {name}"))
            .issuer_name(_name(f"akida test {name}")).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        _write(folder, name, self.key, self.cert)
        self.revoked: list[int] = []

    @property
    def pem(self) -> str:
        return str(self.folder / f"{self.name}.pem")

    def issue(
        self,
        cn: str,
        *,
        server: bool = False,
        expired: bool = False,
        subject: x509.Name | None = None,
    ) -> tuple[str, str]:
        """(certificate, key) paths of a leaf for `cn` (a server one names 127.0.0.1);
        `subject` replaces the plain CN=`cn` subject (files are still named after `cn`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        end = NOW - dt.timedelta(hours=1) if expired else NOW + dt.timedelta(days=7)
        builder = (
            x509.CertificateBuilder().subject_name(subject or _name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=2)).not_valid_after(end)
        )  # fmt: skip
        if server:
            sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = f"{self.name}-{cn}{'-expired' if expired else ''}"
        _write(self.folder, stem, key, cert)
        self.serials = {**getattr(self, "serials", {}), cn: cert.serial_number}
        return str(self.folder / f"{stem}.pem"), str(self.folder / f"{stem}.key")

    def revoke(self, cn: str) -> str:
        """Write a revocation list naming `cn`'s certificate; its path."""
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
            .last_update(NOW - dt.timedelta(minutes=5)).next_update(NOW + dt.timedelta(days=1))
        )  # fmt: skip
        entry = (
            x509.RevokedCertificateBuilder().serial_number(self.serials[cn])
            .revocation_date(NOW - dt.timedelta(minutes=5)).build()
        )  # fmt: skip
        crl = builder.add_revoked_certificate(entry).sign(self.key, hashes.SHA256())
        path = self.folder / f"{self.name}.crl.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return str(path)
