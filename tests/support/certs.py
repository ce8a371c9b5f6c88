"""Test certificates, made at test time with the ``cryptography`` package: a self-signed
certificate for ``localhost`` and ``127.0.0.1`` (its own CA, so that a client can verify it
with ``cafile``) and its key, as PEM files."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingest.tls import fingerprint_der


@dataclass(frozen=True)
class TestCertificate:
    __test__ = False  # a helper, not a test class

    cert_file: Path
    key_file: Path
    #: SHA-256, as :func:`ingest.tls.fingerprint_der` writes it.
    fingerprint: str

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_certificate(folder: Path, name: str = "server") -> TestCertificate:
    """``folder/name.crt`` and ``folder/name.key`` (P-256, valid for a day)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rtmp-ingest test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = folder / f"{name}.crt"
    key_file = folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return TestCertificate(cert_file, key_file, fingerprint_der(der))


async def served_fingerprint(port: int, host: str = "127.0.0.1") -> str:
    """The fingerprint of the certificate a new TLS connection to ``port`` is served (not
    verified: any certificate is taken, to be compared)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        sslobj = writer.get_extra_info("ssl_object")
        assert isinstance(sslobj, ssl.SSLObject)
        der = sslobj.getpeercert(binary_form=True)
        assert der is not None
        return fingerprint_der(der)
    finally:
        writer.close()
