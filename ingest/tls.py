"""TLS for RTMPS, with the standard library's :mod:`ssl`: the certificate context, and a
layer of memory BIOs that the listener runs a connection's bytes through.

The listener does TLS itself (:class:`TlsLayer`) rather than through the event loop's
``ssl=`` support, so that a TLS connection is one of its own from the moment it is
accepted: the caps on pending connections count it during the TLS handshake, the RTMP
handshake deadline (counted from the accept) covers the TLS handshake too, and a failed
TLS handshake is logged with its reason, the same on asyncio and on uvloop.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from dataclasses import dataclass

__all__ = [
    "MINIMUM_VERSION",
    "Certificate",
    "TlsFailed",
    "TlsLayer",
    "certificate_problem",
    "load_certificate",
]

#: The oldest TLS version a client may use.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: Plaintext asked of the TLS object per read (it returns at most one record at a time).
_READ_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Certificate:
    """A loaded certificate and key: the context new TLS connections use, and the
    certificate's SHA-256 fingerprint (for the log: which certificate is served)."""

    context: ssl.SSLContext
    fingerprint: str


def load_certificate(cert_file: str, key_file: str) -> Certificate:
    """A server context for ``cert_file`` (PEM, the certificate first, then any
    intermediates) and ``key_file`` (PEM), TLS 1.2 or newer.

    Raises :class:`ValueError` saying what is wrong: a file missing or unreadable, not
    PEM, or a key that does not belong to the certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    try:
        with open(cert_file, encoding="ascii", errors="replace") as fh:
            pem = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {cert_file}: {exc.strerror or exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(f"{cert_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        # A password callback, so that an encrypted key is refused rather than OpenSSL
        # asking for its passphrase on the terminal.
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except _EncryptedKey:
        raise ValueError(
            f"the key in {key_file} is encrypted: give it unencrypted (mode 0600)"
        ) from None
    except FileNotFoundError as exc:
        raise ValueError(f"cannot read {exc.filename or key_file}: {exc.strerror}") from None
    except ssl.SSLError as exc:
        raise ValueError(_load_error(exc, cert_file, key_file)) from None
    except OSError as exc:
        raise ValueError(f"cannot read {exc.filename or key_file}: {exc.strerror}") from None
    return Certificate(context, _fingerprint(pem))


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    raise _EncryptedKey


def certificate_problem(cert_file: str, key_file: str) -> str | None:
    """What :func:`load_certificate` would refuse, or ``None`` if the pair loads."""
    try:
        load_certificate(cert_file, key_file)
    except ValueError as exc:
        return str(exc)
    return None


def _load_error(exc: ssl.SSLError, cert_file: str, key_file: str) -> str:
    reason = exc.reason or ""
    if reason == "KEY_VALUES_MISMATCH":
        return f"the key in {key_file} does not belong to the certificate in {cert_file}"
    if "PEM" in reason or "PEM lib" in str(exc):
        return (
            f"cannot load {cert_file} with {key_file}: the key must be an unencrypted PEM "
            "private key (-----BEGIN PRIVATE KEY-----), the certificate a PEM certificate"
        )
    return f"cannot load {cert_file} with {key_file}: {reason or exc}"


def _fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate of a PEM file, as hex pairs with colons."""
    try:
        start = pem.index("-----BEGIN CERTIFICATE-----")
        end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
        der = ssl.PEM_cert_to_DER_cert(pem[start:end])
    except ValueError:
        return ""
    return fingerprint_der(der)


def fingerprint_der(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as ``openssl x509 -fingerprint``
    shows it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class TlsFailed(Exception):
    """The TLS layer cannot go on (the handshake failed, or a record was bad); the
    message says why, in words fit for a log line."""


class TlsLayer:
    """The server side of one TLS connection over memory BIOs (sans-IO).

    :meth:`receive` takes bytes read from the socket and returns the plaintext they
    complete (``b""`` while the handshake goes on); :meth:`send` takes plaintext to send;
    :meth:`data_to_send` returns the bytes to write to the socket (handshake replies,
    records, alerts). :attr:`closed` is set once the peer sent its close_notify.
    """

    __slots__ = ("_first", "_incoming", "_object", "_outgoing", "closed", "handshake_done")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False
        self.closed = False
        #: The first byte the peer sent (to name a plain client on the TLS port).
        self._first: int | None = None

    def receive(self, data: bytes) -> bytes:
        """The plaintext ``data`` completes. Raises :class:`TlsFailed`."""
        if self._first is None and data:
            self._first = data[0]
        self._incoming.write(data)
        obj = self._object
        try:
            if not self.handshake_done:
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    return b""
                self.handshake_done = True
            pieces: list[bytes] = []
            while not self.closed:
                try:
                    piece = obj.read(_READ_SIZE)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    self.closed = True
                    break
                if not piece:
                    break
                pieces.append(piece)
        except ssl.SSLError as exc:
            raise TlsFailed(self._describe(exc)) from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` (after the handshake; the caller sends nothing before it)."""
        if data:
            try:
                self._object.write(data)
            except ssl.SSLError as exc:
                raise TlsFailed(self._describe(exc)) from None

    def data_to_send(self) -> bytes:
        """Every byte the TLS layer has for the socket since the last call."""
        return self._outgoing.read() if self._outgoing.pending else b""

    def close(self) -> None:
        """Queue our close_notify (when the handshake finished)."""
        if self.handshake_done:
            # SSLWantReadError: the peer's close_notify is not waited for.
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._object.unwrap()

    @property
    def version(self) -> str | None:
        """The negotiated protocol version (``TLSv1.3``), once the handshake is done."""
        return self._object.version()

    def _describe(self, exc: ssl.SSLError) -> str:
        first = self._first
        if not self.handshake_done and first is not None:
            if first == 3:
                return "a plain RTMP client on the TLS port (C0 = 0x03; use rtmps://)"
            if chr(first) in "GPHCDO":
                return "an HTTP request on the TLS port"
        reason = exc.reason or type(exc).__name__
        where = "TLS handshake failed" if not self.handshake_done else "TLS error"
        return f"{where}: {reason}"
