"""TLS for the XR server: a certificate and key given by the plant, or a self-signed one for a lab.

Browsers give a page the camera (`getUserMedia`) and WebXR only in a secure context: HTTPS, or
``http://localhost`` on the device itself. AR glasses and a remote expert's laptop reach the
server over the network, so the server must speak HTTPS to them. `load_server_tls` checks a
PEM certificate and key (present, readable, PEM, unencrypted, matching) and builds the server's
`ssl.SSLContext`; `self_signed_certificate` makes (once) and re-uses a self-signed certificate
for the names and addresses the devices use, so a lab needs no certificate authority: users
check the SHA-256 fingerprint the server prints against the one the browser shows, or install
the certificate on the devices.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xr_server.errors import XrServerError

__all__ = [
    "SELF_SIGNED_CERT",
    "SELF_SIGNED_KEY",
    "ServerTls",
    "TlsError",
    "default_names",
    "load_server_tls",
    "self_signed_certificate",
]

#: File names of the self-signed certificate and its key in the state directory.
SELF_SIGNED_CERT = "xrcell-self-signed.crt.pem"
SELF_SIGNED_KEY = "xrcell-self-signed.key.pem"
#: Lifetime of a new self-signed certificate (browsers refuse leaf certificates over 398 days).
SELF_SIGNED_LIFETIME = datetime.timedelta(days=397)
#: A self-signed certificate this close to its end is replaced at the next start.
RENEW_BEFORE = datetime.timedelta(days=30)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class TlsError(XrServerError):
    """A TLS certificate or key cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class ServerTls:
    """What the server needs to serve HTTPS.

    Attributes:
        context: the server's `ssl.SSLContext` (TLS 1.2 or newer) holding the certificate chain.
        cert_path, key_path: the PEM files it was loaded from.
        fingerprint_sha256: SHA-256 of the certificate (DER), as browsers show it
            (``AB:CD:...``, 32 colon-separated upper-case hex bytes).
        names: the DNS names and IP addresses of the certificate (subject alternative names).
    """

    context: ssl.SSLContext
    cert_path: Path
    key_path: Path
    fingerprint_sha256: str
    names: tuple[str, ...]


def _read(path: Path, what: str) -> bytes:
    if not path.exists():
        raise TlsError(f"TLS {what} file {path} does not exist")
    if not path.is_file():
        raise TlsError(f"TLS {what} file {path} is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the TLS {what} file {path}: {exc.strerror or exc}") from exc


def _certificate(path: Path) -> x509.Certificate:
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise TlsError(f"TLS certificate file {path} is not a PEM certificate: {exc}") from exc


def _private_key(path: Path):  # -> a cryptography private key
    data = _read(path, "key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted and no password given
        raise TlsError(f"TLS key file {path} is encrypted: give an unencrypted key "
                       "(the server cannot ask for its password)") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"TLS key file {path} is not a PEM private key: {exc}") from exc


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(name.value) for name in san
                 if isinstance(name, (x509.DNSName, x509.IPAddress)))


def _public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_server_tls(cert_path: Path, key_path: Path) -> ServerTls:
    """Check a PEM certificate (chain) and its private key and build the server's TLS context.

    Args:
        cert_path: PEM file with the server certificate first, then any intermediates.
        key_path: PEM file with the certificate's private key, unencrypted.

    Raises:
        TlsError: a file is missing, unreadable, not PEM, the key is encrypted, the key does not
            belong to the certificate, or OpenSSL refuses the pair; the message names the file.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert = _certificate(cert_path)
    key = _private_key(key_path)
    if _public(key.public_key()) != _public(cert.public_key()):
        raise TlsError(f"TLS key file {key_path} does not match the certificate {cert_path} "
                       "(their public keys differ)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except ssl.SSLError as exc:
        raise TlsError(f"OpenSSL refuses the TLS certificate {cert_path} with the key "
                       f"{key_path}: {exc.reason or exc}") from exc
    return ServerTls(context, cert_path, key_path, _fingerprint(cert), _names(cert))


def default_names(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The names a self-signed certificate covers for a server listening on `host`.

    ``localhost``, 127.0.0.1 and ::1; `host` itself unless it is a wildcard (``0.0.0.0``,
    ``::``); for a wildcard, the machine's host name and the addresses it resolves to, since
    devices on the network reach the server by those; then `extra` (``--tls-san``). In order,
    without duplicates.
    """
    names = ["localhost", "127.0.0.1", "::1"]
    if host in _WILDCARD_HOSTS:
        hostname = socket.gethostname()
        names.append(hostname)
        try:
            infos = socket.getaddrinfo(hostname, None)
        except OSError:
            infos = []
        names += [str(info[4][0]) for info in infos]
    else:
        names.append(host)
    names += list(extra)
    return list(dict.fromkeys(n for n in names if n))


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _covers(existing: tuple[str, ...], names: Sequence[str]) -> bool:
    have = set()
    for n in existing:
        try:
            have.add(str(ipaddress.ip_address(n)))
        except ValueError:
            have.add(n.lower())
    wanted = set()
    for n in names:
        try:
            wanted.add(str(ipaddress.ip_address(n)))
        except ValueError:
            wanted.add(n.lower())
    return wanted <= have


def self_signed_certificate(directory: Path, names: Sequence[str],
                            now: datetime.datetime | None = None) -> tuple[Path, Path, str]:
    """The self-signed certificate and key in `directory`, made now if needed.

    An existing pair (`SELF_SIGNED_CERT`, `SELF_SIGNED_KEY`) is re-used when it loads, matches,
    covers every name in `names` and is valid for more than `RENEW_BEFORE`: its fingerprint stays
    the same across restarts, so devices that trusted it keep trusting it. Otherwise a new ECDSA
    P-256 key and certificate (subject alternative names `names`, `SELF_SIGNED_LIFETIME`,
    serverAuth) replace it; the key file is readable by its owner only.

    Args:
        directory: where the pair lives (created if missing), e.g. ``data/tls``.
        names: DNS names and IP addresses the devices use to reach the server
            (`default_names`); the first is the certificate's common name.
        now: the current time (UTC), for tests.

    Returns:
        ``(cert_path, key_path, why)``: `why` is ``"re-used"`` or says why a new one was made.

    Raises:
        TlsError: `directory` cannot be created or written.
    """
    if not names:
        raise TlsError("a self-signed certificate needs at least one name")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    why = "none yet"
    if cert_path.exists() or key_path.exists():
        try:
            existing = load_server_tls(cert_path, key_path)
            cert = _certificate(cert_path)
        except TlsError as exc:
            why = f"the previous one is unusable: {exc}"
        else:
            if not _covers(existing.names, names):
                missing = sorted(set(names) - set(existing.names))
                why = f"the previous one does not cover {', '.join(missing)}"
            elif cert.not_valid_after_utc - now < RENEW_BEFORE:
                why = f"the previous one expires on {cert.not_valid_after_utc:%Y-%m-%d}"
            else:
                return cert_path, key_path, "re-used"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xrcell lab (self-signed)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SELF_SIGNED_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        os.chmod(key_path, 0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise TlsError(f"cannot write the self-signed certificate in {directory}: "
                       f"{exc.strerror or exc}") from exc
    return cert_path, key_path, why


def server_tls(*, cert_path: Path | None, key_path: Path | None, self_signed: bool, host: str,
               extra_names: Sequence[str], directory: Path) -> tuple[ServerTls | None, str]:
    """The TLS of `xrcell demo` / `xrcell serve` from their flags.

    Args:
        cert_path, key_path: ``--tls-cert`` / ``--tls-key`` (both or neither).
        self_signed: ``--self-signed``: a certificate of `self_signed_certificate` in `directory`
            for `default_names(host, extra_names)`.
        host: ``--host``.
        extra_names: ``--tls-san`` (only with `self_signed`).
        directory: ``--tls-dir``, where the self-signed pair lives.

    Returns:
        ``(tls, origin)``: None and ``""`` for plain HTTP; otherwise the loaded TLS and a
        phrase saying where the certificate came from (for the start-up message).

    Raises:
        TlsError: contradictory flags, or an unusable certificate or key (named).
    """
    if (cert_path is None) != (key_path is None):
        raise TlsError("--tls-cert and --tls-key go together: give both files")
    if self_signed and cert_path is not None:
        raise TlsError("--self-signed makes its own certificate: leave out --tls-cert and --tls-key")
    if extra_names and not self_signed:
        raise TlsError("--tls-san names are for --self-signed (a given certificate has its own)")
    if self_signed:
        cert_path, key_path, why = self_signed_certificate(directory, default_names(host, extra_names))
        origin = "self-signed, re-used" if why == "re-used" else f"self-signed, new ({why})"
        return load_server_tls(cert_path, key_path), origin
    if cert_path is None or key_path is None:
        return None, ""
    return load_server_tls(cert_path, key_path), "given"
