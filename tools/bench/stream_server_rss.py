#!/usr/bin/env python3
"""Peak RSS of samples/stream_server with many clients that ask for a lot
and read nothing (issue: 200 clients x 1 GiB, peak RSS < 64 MiB with Drain).

  ./bazelw build --config=opt //samples:stream_server
  tools/bench/stream_server_rss.py --binary=bazel-bin/samples/stream_server \\
      [--clients=200] [--request=1073741824] [--seconds=10] [--no-drain] \\
      [--max_memory_mib=4096] [--tls]

--tls runs the server with --tls and makes each client a TLS client
(Python's ssl module) that completes its handshake, asks, and reads nothing.

--max_memory_mib caps the server's address space (prlimit), so that the
--no-drain run, which buffers everything the clients do not read, ends with
an allocation failure instead of taking the machine down.
"""

import argparse
import re
import resource
import socket
import ssl
import subprocess
import sys
import time


def vm(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # KiB
    except FileNotFoundError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--request", type=int, default=1 << 30)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument("--max_memory_mib", type=int, default=4096)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()

    limit = args.max_memory_mib << 20

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [args.binary, "--port=0", "--stats_interval=1h"]
    if args.no_drain:
        command.append("--no-drain")
    tls = None
    if args.tls:
        command.append("--tls")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False  # The server's certificate is ephemeral.
        tls.verify_mode = ssl.CERT_NONE
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                              preexec_fn=cap)
    line = server.stdout.readline()
    while "listening on" not in line:  # --tls prints its certificate first.
        if not line:
            sys.exit(f"stream_server exited ({server.wait()}) before listening")
        line = server.stdout.readline()
    port = int(re.search(r":(\d+)$", line.strip()).group(1))
    baseline = vm(server.pid, "VmRSS")
    clients = []
    for _ in range(args.clients):
        s = socket.create_connection(("127.0.0.1", port))
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname="localhost")
        s.sendall(f"{args.request}\n".encode())
        clients.append(s)
    peak = baseline
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and server.poll() is None:
        hwm = vm(server.pid, "VmHWM")
        if hwm:
            peak = max(peak, hwm)
        time.sleep(0.1)
    alive = server.poll() is None
    for s in clients:
        s.close()
    if alive:
        server.terminate()
    server.wait(timeout=30)
    mode = ("--no-drain" if args.no_drain else "with Drain") + (
        " over TLS" if args.tls else "")
    print(f"{mode}: {args.clients} clients x {args.request} bytes, reading "
          f"nothing for {args.seconds:g} s: server RSS {baseline} KiB -> peak "
          f"{peak} KiB ({peak / 1024:.1f} MiB)"
          + ("" if alive else f"; the server died (exit {server.returncode}) "
             f"at its {args.max_memory_mib} MiB address-space cap"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
