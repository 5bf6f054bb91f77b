"""TLS: a self-signed certificate made once and re-used, clear errors for unusable files, and a
real HTTPS + Socket.IO (WSS) connection on 127.0.0.1 that verifies the server's certificate."""

import datetime
import os
import ssl

import pytest
import requests
import socketio

from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from tests.xr_server.live import PASSWORD
from xr_server.app import create_app
from xr_server.serving import serve_in_thread
from xr_server.tls import (
    SELF_SIGNED_CERT,
    SELF_SIGNED_KEY,
    TlsError,
    default_names,
    load_server_tls,
    self_signed_certificate,
)


@pytest.fixture
def pair(tmp_path):
    cert, key, why = self_signed_certificate(tmp_path / "tls", ["localhost", "127.0.0.1"])
    return cert, key


def test_a_self_signed_certificate_is_made_once_and_re_used(tmp_path):
    directory = tmp_path / "state" / "tls"
    cert, key, why = self_signed_certificate(directory, ["localhost", "127.0.0.1", "10.0.5.7"])
    assert (cert.name, key.name, why) == (SELF_SIGNED_CERT, SELF_SIGNED_KEY, "none yet")
    assert os.stat(key).st_mode & 0o077 == 0  # the key is the owner's only
    first = load_server_tls(cert, key)
    assert set(first.names) == {"localhost", "127.0.0.1", "10.0.5.7"}
    assert len(first.fingerprint_sha256.split(":")) == 32

    # A restart with the same (or fewer) names keeps the certificate and its fingerprint.
    assert self_signed_certificate(directory, ["127.0.0.1"])[2] == "re-used"
    assert load_server_tls(cert, key).fingerprint_sha256 == first.fingerprint_sha256

    # A new address, or the end of its life near, makes a new one.
    why = self_signed_certificate(directory, ["localhost", "lab-pc.local"])[2]
    assert why == "the previous one does not cover lab-pc.local"
    assert load_server_tls(cert, key).fingerprint_sha256 != first.fingerprint_sha256
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=380)
    assert self_signed_certificate(directory, ["localhost"], now=later)[2].startswith(
        "the previous one expires on ")


def test_default_names_cover_loopback_and_the_listening_host():
    assert default_names("10.0.5.7", ["hmi.plant.example"]) == [
        "localhost", "127.0.0.1", "::1", "10.0.5.7", "hmi.plant.example"]
    import socket
    assert socket.gethostname() in default_names("0.0.0.0")


def test_a_missing_certificate_or_key_is_named(tmp_path, pair):
    cert, key = pair
    with pytest.raises(TlsError, match=rf"^TLS certificate file {tmp_path}/nope.pem does not exist$"):
        load_server_tls(tmp_path / "nope.pem", key)
    with pytest.raises(TlsError, match=rf"^TLS key file {tmp_path}/nope.key does not exist$"):
        load_server_tls(cert, tmp_path / "nope.key")


def test_a_key_path_that_is_a_directory_is_named(tmp_path, pair):
    # (An unreadable file gives "cannot read the TLS key file <path>: Permission denied"; the
    # tests run as root here, who reads every file, so a directory stands in for it.)
    cert, _key = pair
    with pytest.raises(TlsError, match=rf"^TLS key file {tmp_path} is not a file$"):
        load_server_tls(cert, tmp_path)


def test_files_that_are_not_pem_are_named(tmp_path, pair):
    cert, key = pair
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsError, match=rf"^TLS certificate file {junk} is not a PEM certificate: "):
        load_server_tls(junk, key)
    with pytest.raises(TlsError, match=rf"^TLS key file {cert} is not a PEM private key: "):
        load_server_tls(cert, cert)


def test_a_key_of_another_certificate_is_refused(tmp_path, pair):
    cert, _key = pair
    _other_cert, other_key, _ = self_signed_certificate(tmp_path / "other", ["localhost"])
    with pytest.raises(TlsError, match=rf"^TLS key file {other_key} does not match the certificate "
                                       rf"{cert} \(their public keys differ\)$"):
        load_server_tls(cert, other_key)


def test_an_encrypted_key_is_refused_with_the_reason(tmp_path, pair):
    from cryptography.hazmat.primitives import serialization

    cert, key = pair
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-passphrase")))
    with pytest.raises(TlsError, match=rf"^TLS key file {locked} is encrypted: give an unencrypted key"):
        load_server_tls(cert, locked)


def test_https_and_socketio_over_tls_verify_the_self_signed_certificate(tmp_path, make_store, pair):
    cert, key = pair
    tls = load_server_tls(cert, key)
    store = make_store(wendy=(PASSWORD, ["worker"]))
    app, sio = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=store,
                          secret_key=SECRET, cell_name="lab", twin_rate_hz=10.0)
    base = serve_in_thread(app, sio, name="xr-server-tls", ssl_context=tls.context)
    try:
        assert base.startswith("https://127.0.0.1:")
        # Plain HTTP on the TLS port gets nothing useful; an unknown certificate is refused.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{base}/healthz", timeout=10)
        response = requests.post(f"{base}/api/login", json={"username": "wendy", "password": PASSWORD},
                                 verify=str(cert), timeout=10)
        assert response.status_code == 200
        assert "Secure" in response.headers["Set-Cookie"]  # the cookie only travels over TLS
        token = response.json()["token"]

        http = requests.Session()
        http.verify = str(cert)
        client = socketio.Client(reconnection=False, http_session=http)
        states = []
        client.on("twin_state", states.append, namespace="/xr")
        client.connect(base, namespaces=["/xr"], auth={"token": token}, transports=["websocket"],
                       wait_timeout=10)
        try:
            for _ in range(200):
                if states:
                    break
                client.sleep(0.05)
            assert states and states[0]["cell"] == "lab"
            assert client.transport() == "websocket"
        finally:
            client.disconnect()
        # The certificate the server presents is the one whose fingerprint it printed.
        pem = ssl.get_server_certificate(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        served = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256())
        assert served.hex(":").upper() == tls.fingerprint_sha256
    finally:
        app.xrcell_stop()


# ----------------------------------------------------------------------------------- CLI
def test_the_cli_names_a_key_that_does_not_match_before_starting_anything(tmp_path, capsys, pair):
    from xr_server.cli import main
    from xr_server.compose import REPO_ROOT

    cert, _key = pair
    _c, other_key, _ = self_signed_certificate(tmp_path / "other", ["localhost"])
    cell = REPO_ROOT / "launch" / "cells" / "panda_dds.yaml"
    code = main(["serve", "--cell", str(cell), "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
                 "--tls-cert", str(cert), "--tls-key", str(other_key)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip() == (f"xrcell: error: TLS key file {other_key} does not match the "
                                    f"certificate {cert} (their public keys differ)")
    assert "cell" not in captured.out  # refused before the cell was loaded


@pytest.mark.parametrize(("args", "error"), [
    (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together: give both files"),
    (["--self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
     "--self-signed makes its own certificate: leave out --tls-cert and --tls-key"),
    (["--tls-san", "10.0.5.7"], "--tls-san names are for --self-signed (a given certificate has its own)"),
])
def test_the_cli_refuses_contradictory_tls_flags(tmp_path, capsys, args, error):
    from xr_server.cli import main

    code = main(["demo", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", *args])
    assert (code, capsys.readouterr().err.strip()) == (2, f"xrcell: error: {error}")


def test_xrcell_serve_self_signed_serves_https_with_the_fingerprint_it_prints(tmp_path):
    import re
    import subprocess
    import sys

    from xr_server.compose import REPO_ROOT
    from xr_server.serving import free_port

    port = free_port()
    tls_dir = tmp_path / "tls"
    command = [sys.executable, "-m", "xr_server.cli", "serve", "--robot", "sim",
               "--cell", str(REPO_ROOT / "launch" / "cells" / "panda_dds.yaml"),
               "--db", f"sqlite:///{tmp_path / 'db.sqlite'}", "--port", str(port),
               "--self-signed", "--tls-dir", str(tls_dir), "--tls-san", "xr-lab.local",
               "--duration", "60"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as server:
        try:
            lines = []
            for line in server.stdout:
                lines.append(line)
                if "dashboard on" in line:
                    break
            out = "".join(lines)
            assert f"dashboard on https://127.0.0.1:{port}/" in out, out
            assert "(self-signed, new (none yet)) for localhost, 127.0.0.1, ::1, xr-lab.local" in out
            printed = re.search(r"SHA-256 fingerprint: ([0-9A-F:]{95})", out).group(1)
            cert = tls_dir / SELF_SIGNED_CERT
            assert load_server_tls(cert, tls_dir / SELF_SIGNED_KEY).fingerprint_sha256 == printed
            health = requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(cert), timeout=10)
            assert health.status_code == 200 and "components" in health.json()
        finally:
            server.terminate()
            server.wait(timeout=30)
