"""Small loopback services for trying examples/watchkeeper.yaml on any machine.

Starts, on 127.0.0.1 only:
  * a DNS server (UDP and TCP) answering ``app.demo.internal A 127.0.0.1`` and
    ``demo.internal MX 10 mail.demo.internal``;
  * an HTTPS server whose certificate for ``localhost``/127.0.0.1 is signed by
    a CA made at start; the CA is written to ``--ca-file`` for the tls check.

    python examples/demo_services.py --dns-port 5353 --tls-port 8443 --ca-file /tmp/demo-ca.pem

Stops on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import signal
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RECORDS = {
    ("app.demo.internal.", "A"): ["127.0.0.1"],
    ("demo.internal.", "MX"): ["10 mail.demo.internal."],
    ("demo.internal.", "TXT"): ['"v=demo"'],
}


def answer(wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    reply = dns.message.make_response(query)
    q = query.question[0]
    name, rdtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
    values = RECORDS.get((name, rdtype))
    if values:
        reply.answer.append(dns.rrset.from_text_list(q.name, 60, "IN", rdtype, values))
    elif not any(n == name for n, _ in RECORDS):
        reply.set_rcode(dns.rcode.NXDOMAIN)
    return reply.to_wire()


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        try:
            sock.sendto(answer(data), self.client_address)
        except Exception:  # a malformed query gets no answer
            pass


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            size = struct.unpack("!H", self.request.recv(2))[0]
            wire = b""
            while len(wire) < size:
                chunk = self.request.recv(size - len(wire))
                if not chunk:
                    return
                wire += chunk
            out = answer(wire)
            self.request.sendall(struct.pack("!H", len(out)) + out)
        except Exception:
            pass


def make_certs(directory: Path, ca_file: Path) -> tuple[Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "watchkeeper demo CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dns-port", type=int, default=5353)
    ap.add_argument("--tls-port", type=int, default=8443)
    ap.add_argument("--ca-file", default="/tmp/watchkeeper-demo-ca.pem")
    args = ap.parse_args()

    socketserver.ThreadingUDPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", args.dns_port), UDPHandler)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", args.dns_port), TCPHandler)
    tmp = Path(tempfile.mkdtemp(prefix="wk-demo-"))
    cert, key = make_certs(tmp, Path(args.ca_file))
    https = ThreadingHTTPServer(("127.0.0.1", args.tls_port), Hello)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    https.socket = ctx.wrap_socket(https.socket, server_side=True)
    servers = [udp, tcp, https]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print(f"dns on 127.0.0.1:{args.dns_port}, https on 127.0.0.1:{args.tls_port}, "
          f"CA in {args.ca_file}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for s in servers:
        s.shutdown()
        s.server_close()


if __name__ == "__main__":
    socket.setdefaulttimeout(5)
    main()
