"""Slow readers against samples/stream_server: with Drain the server's
buffered bytes stay within the high watermark plus one chunk per client,
over TCP and over TLS (--tls: Python's ssl module as the client); with
--no-drain they grow with whatever the clients do not read."""

import os
import re
import socket
import ssl
import subprocess
import sys
import time

CLIENTS = 5
CHUNK = 64 * 1024
HIGH_WATER = 64 * 1024
REQUEST = 50 * 1024 * 1024  # Far more than the slow readers take.


def run(extra_flags):
    binary = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                          "samples", "stream_server")
    server = subprocess.Popen(
        [binary, "--port=0", "--stats_interval=50ms", f"--chunk={CHUNK}"] + extra_flags,
        stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        while "listening on" not in line:  # --tls prints its certificate first.
            if not line:
                raise RuntimeError(
                    f"stream_server exited ({server.wait()}) before listening")
            line = server.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        tls = None
        if "--tls" in extra_flags:
            # The server's certificate is ephemeral: this test checks flow
            # control, not verification.
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        clients = []
        for _ in range(CLIENTS):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname="localhost")
            s.sendall(f"{REQUEST}\n".encode())
            clients.append(s)
        # Slow readers: a little from each, for a bounded time.
        deadline = time.monotonic() + 3
        received = 0
        while time.monotonic() < deadline:
            for s in clients:
                received += len(s.recv(4096))
            time.sleep(0.002)
        # The statistics the server printed meanwhile.
        peak = 0
        os.set_blocking(server.stdout.fileno(), False)
        for stat in server.stdout.read().splitlines():
            m = re.match(r"clients: (\d+), buffered: (\d+) bytes", stat)
            if m:
                peak = max(peak, int(m.group(2)))
        for s in clients:
            s.close()
        return peak, received
    finally:
        server.terminate()
        server.wait(timeout=10)


def misbehaving_clients():
    """Clients that reset before their request, send an over-long line or
    garbage are counted on the statistics line, never logged one by one."""
    binary = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                          "samples", "stream_server")
    server = subprocess.Popen(
        [binary, "--port=0", "--stats_interval=20ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        resets, too_long, malformed = 20, 3, 2
        for _ in range(resets):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"123")  # No newline: then a reset.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        for _ in range(too_long):
            s = socket.create_connection(("127.0.0.1", port))
            try:
                s.sendall(b"9" * (256 * 1024))
            except OSError:
                pass  # The server may close before it has all of it.
            s.close()
        for _ in range(malformed):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"lots\n")
                if not s.recv(100).startswith(b"expected a byte count"):
                    print("FAIL: no answer to a malformed request")
                    return 1
        want = (f"{resets} left early, {too_long} too long, "
                f"{malformed} malformed")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stat = server.stdout.readline()
            if want in stat:
                break
        else:
            print(f"FAIL: the statistics never said '{want}'")
            return 1
    finally:
        server.terminate()
        server.wait(timeout=10)
    errors = server.stderr.read()
    if errors:
        print(f"FAIL: stream_server logged per-connection failures:\n{errors}")
        return 1
    print(f"misbehaving clients counted: {want}")
    return 0


def main():
    if misbehaving_clients() != 0:
        return 1
    peak, received = run([])
    bound = CLIENTS * (HIGH_WATER + CHUNK)
    print(f"with Drain: peak buffered {peak} bytes (bound {bound}), "
          f"clients read {received} bytes")
    if peak > bound:
        print("FAIL: the server buffered more than the bound")
        return 1
    # Over TLS the bound is the same: the TLS transport's buffer size counts
    # plaintext, ciphertext and what TCP holds, and Drain waits on it.
    peak_tls, received_tls = run(["--tls"])
    print(f"with Drain over TLS: peak buffered {peak_tls} bytes (bound {bound}), "
          f"clients read {received_tls} bytes")
    if peak_tls > bound or received_tls == 0:
        print("FAIL: over TLS the server buffered more than the bound")
        return 1
    peak_no_drain, _ = run(["--no-drain"])
    print(f"--no-drain: peak buffered {peak_no_drain} bytes")
    if peak_no_drain <= bound:
        print("FAIL: without Drain the buffers should have grown past the bound")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
