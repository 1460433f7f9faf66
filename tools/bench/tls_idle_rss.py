#!/usr/bin/env python3
"""What an idle TLS connection costs sluice's TLS echo server in memory.

Starts samples/tls_echo_server (or, with --plain, samples/echo_server for
comparison), opens --connections connections (TLS ones complete their
handshake and one echo, so the session tickets are read too), lets them sit
idle and reports the server's RSS growth per connection.

  ./bazelw build --config=opt //samples:tls_echo_server //samples:echo_server
  tools/bench/tls_idle_rss.py --bin_dir=bazel-bin/samples [--connections=1000]
"""

import argparse
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin_dir", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()

    # One fd per connection on both sides, plus some.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.connections + 64)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    binary = os.path.join(args.bin_dir,
                          "echo_server" if args.plain else "tls_echo_server")
    server = subprocess.Popen([binary, "--port=0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        line = server.stdout.readline().decode()
        while "listening on" not in line:
            line = server.stdout.readline().decode()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        # The server prints a line per TLS connection: keep its pipe drained.
        os.set_blocking(server.stdout.fileno(), False)
        tls = None
        if not args.plain:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            tls.check_hostname = False  # Its certificate is ephemeral.
            tls.verify_mode = ssl.CERT_NONE
        time.sleep(0.2)
        before = rss_kib(server.pid)
        clients = []
        for i in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port))
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname="localhost")
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError("no echo")
            clients.append(s)
            if i % 100 == 0:
                server.stdout.read()
        time.sleep(1)
        server.stdout.read()
        after = rss_kib(server.pid)
        kind = "plain TCP" if args.plain else "TLS"
        print(f"{args.connections} idle {kind} connections: server RSS "
              f"{before} KiB -> {after} KiB, "
              f"{(after - before) * 1024 / args.connections:.0f} bytes per "
              f"connection")
        for s in clients:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
