"""A fast and a slow client against samples/broadcast: the fast one gets
every message in order, at the producer's pace; the slow one only slows
itself (it loses its oldest messages, or is disconnected), and the server's
backlog stays bounded."""

import os
import re
import socket
import subprocess
import sys
import time

MAX_LAG = 50
MESSAGE = 8000  # 4 MB/s at 2 ms: more than kernel buffers absorb.
INTERVAL_MS = 2


def start(slow_policy):
    binary = os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                          "samples", "broadcast")
    server = subprocess.Popen(
        [binary, "--port=0", f"--interval={INTERVAL_MS}ms", f"--max_lag={MAX_LAG}",
         f"--message_size={MESSAGE}", f"--slow={slow_policy}", "--stats_interval=100ms"],
        stdout=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)$", server.stdout.readline().strip()).group(1))
    return server, port


def connect(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s


def stats(server):
    os.set_blocking(server.stdout.fileno(), False)
    lines = (server.stdout.read() or "").splitlines()
    return [dict((k, int(v)) for k, v in re.findall(r"(\w[\w ]*?): (\d+)", l))
            for l in lines if l.startswith("messages:")]


def run(slow_policy):
    server, port = start(slow_policy)
    try:
        fast = connect(port)
        slow = connect(port, rcvbuf=4096)  # Never reads.
        fast.settimeout(5)
        received = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            received += fast.recv(1 << 20)
        lines = received.split(b"\n")[:-1]
        sequence = [int(l.split()[1]) for l in lines]
        history = stats(server)
        slow_lost = False
        if slow_policy == "disconnect":
            # The slow client's connection ends (after what was in flight).
            slow.settimeout(5)
            deadline = time.monotonic() + 10
            try:
                while time.monotonic() < deadline:
                    if not slow.recv(1 << 20):
                        slow_lost = True
                        break
            except ConnectionResetError:
                slow_lost = True
        fast.close()
        slow.close()
        return sequence, history, slow_lost
    finally:
        server.terminate()
        server.wait(timeout=10)


def check(ok, message):
    print(("ok: " if ok else "FAIL: ") + message)
    return ok


def main():
    good = True
    sequence, history, _ = run("drop")
    produced = history[-1]["messages"] if history else 0
    good &= check(len(sequence) > 0 and sequence == list(range(sequence[0], sequence[0] + len(sequence))),
                  f"the fast client got {len(sequence)} messages in order")
    good &= check(len(sequence) >= 0.8 * produced,
                  f"...which is the producer's pace ({produced} produced)")
    peak_queued = max(h["queued messages"] for h in history)
    peak_buffered = max(h["buffered"] for h in history)
    good &= check(peak_queued <= 2 * MAX_LAG, f"backlog bounded: {peak_queued} messages")
    good &= check(peak_buffered <= 2 * (64 * 1024 + MESSAGE),
                  f"transport buffers bounded: {peak_buffered} bytes")
    good &= check(history[-1]["dropped"] > 0, f"the slow client lost {history[-1]['dropped']} messages")

    sequence, history, slow_lost = run("disconnect")
    good &= check(len(sequence) > 0 and sequence == list(range(sequence[0], sequence[0] + len(sequence))),
                  f"--slow=disconnect: the fast client got {len(sequence)} messages in order")
    good &= check(max(h["disconnected"] for h in history) >= 1 and slow_lost,
                  "the slow client was disconnected")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
