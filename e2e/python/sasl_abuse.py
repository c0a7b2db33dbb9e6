"""Misbehaving clients of a SASL_SSL listener, for measuring what they cost the others:
threads that, as fast as they can, authenticate with a wrong SCRAM-SHA-512 password, send a
10 MB SASL token, give up an exchange after its first message, or speak plaintext to the
TLS port; and connections opened and left silent. Prints how many of each it made and what
the broker answered. Usage: sasl_abuse.py HOST:PORT CA_FILE SECONDS [SILENT_CONNECTIONS]"""

import base64
import os
import socket
import ssl
import struct
import sys
import threading
import time


def frame(api_key, version, correlation, body):
    header = struct.pack(">hhih", api_key, version, correlation, 6) + b"abuser"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def kstring(s):
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def kbytes(b):
    return struct.pack(">i", len(b)) + b


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(sock):
    size = read_exactly(sock, 4)
    if size is None:
        return None
    (n,) = struct.unpack(">i", size)
    return read_exactly(sock, n)


def authenticate_reply(sock):
    """The error code and bytes of a SaslAuthenticate v0 answer, or None if closed."""
    data = read_frame(sock)
    if data is None:
        return None
    error = struct.unpack_from(">h", data, 4)[0]
    at = 6
    (mlen,) = struct.unpack_from(">h", data, at)
    at += 2 + max(mlen, 0)
    (blen,) = struct.unpack_from(">i", data, at)
    return error, data[at + 4 : at + 4 + max(blen, 0)]


def tls_socket(address, context):
    host, port = address
    raw = socket.create_connection((host, port), timeout=10)
    return context.wrap_socket(raw, server_hostname=host)


def handshake(sock, mechanism):
    sock.sendall(frame(17, 1, 1, kstring(mechanism)))
    return read_frame(sock)


def wrong_password(address, context):
    with tls_socket(address, context) as sock:
        handshake(sock, "SCRAM-SHA-512")
        nonce = base64.b64encode(os.urandom(18)).decode()
        sock.sendall(frame(36, 0, 2, kbytes(f"n,,n=admin,r={nonce}".encode())))
        reply = authenticate_reply(sock)
        if reply is None or reply[0] != 0:
            return f"first message refused: {reply}"
        fields = dict(p.split("=", 1) for p in reply[1].decode().split(","))
        proof = base64.b64encode(os.urandom(64)).decode()
        final = f"c=biws,r={fields['r']},p={proof}".encode()
        sock.sendall(frame(36, 0, 3, kbytes(final)))
        reply = authenticate_reply(sock)
        return "error 58" if reply and reply[0] == 58 else f"answered {reply}"


def huge_token(address, context):
    with tls_socket(address, context) as sock:
        handshake(sock, "SCRAM-SHA-512")
        try:
            sock.sendall(frame(36, 0, 2, kbytes(b"n" * (10 << 20))))
            reply = authenticate_reply(sock)
        except OSError:
            return "closed"
        return "error 58" if reply and reply[0] == 58 else f"answered {reply}"


def cut_short(address, context):
    with tls_socket(address, context) as sock:
        handshake(sock, "SCRAM-SHA-512")
        sock.sendall(frame(36, 0, 2, kbytes(b"n,,n=admin,r=abcdefghijklmnop")))
        authenticate_reply(sock)
    return "left"


def plaintext(address, _context):
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(frame(18, 0, 1, b""))
        try:
            data = sock.recv(64)
        except OSError:
            data = b""
    return "no Kafka answer" if not data.startswith(b"\x00\x00") else "answered"


def run(name, action, address, context, until, counts, lock):
    while time.monotonic() < until:
        try:
            outcome = action(address, context)
        except (OSError, ssl.SSLError, ValueError, KeyError) as e:
            outcome = type(e).__name__
        with lock:
            counts.setdefault((name, outcome), 0)
            counts[(name, outcome)] += 1


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    address = (host, int(port))
    context = ssl.create_default_context(cafile=sys.argv[2])
    seconds = float(sys.argv[3])
    silent = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    until = time.monotonic() + seconds
    idle = [socket.create_connection(address) for _ in range(silent)]
    counts, lock = {}, threading.Lock()
    actions = [
        ("wrong password", wrong_password),
        ("10 MB token", huge_token),
        ("cut short", cut_short),
        ("plaintext", plaintext),
    ]
    threads = [
        threading.Thread(target=run, args=(n, a, address, context, until, counts, lock))
        for n, a in actions
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in idle:
        s.close()
    print(f"{silent} silent connections held for {seconds:.0f} s")
    for (name, outcome), n in sorted(counts.items()):
        print(f"{name}: {n} ({outcome})")


if __name__ == "__main__":
    main()
