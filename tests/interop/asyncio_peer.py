#!/usr/bin/python3
"""asyncio over Python's ssl module as a peer of sluice (python_interop_test).

  asyncio_peer.py server --cert=C --key=K [--starttls]
      Listens on 127.0.0.1 on a free port, prints "listening on PORT", and
      echoes what each connection sends until its EOF, then closes it
      (close_notify). --starttls: each connection starts in plaintext; on
      "STARTTLS\\n" the server answers "GO\\n" and upgrades its side with
      StreamWriter.start_tls, then echoes.
  asyncio_peer.py client --port=P --ca=CA --bytes=N [--starttls]
      Connects with TLS (verifying CA and the name "localhost"; --starttls:
      in plaintext, sends "STARTTLS\\n", waits for "GO\\n", then start_tls),
      sends N bytes of the pattern, reads the echo and checks it byte for
      byte, closes, and prints "OK N"; any failure prints "FAIL ..." and
      exits 1.

The pattern is byte i = i % 251, as the C++ side makes it.
"""

import argparse
import asyncio
import ssl
import sys


def pattern(size):
    return (bytes(range(251)) * (size // 251 + 1))[:size]


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def serve(args):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)

    async def on_connection(reader, writer):
        try:
            if args.starttls:
                line = await reader.readline()
                if line != b"STARTTLS\n":
                    print(f"FAIL: expected STARTTLS, got {line!r}", flush=True)
                    writer.close()
                    return
                writer.write(b"GO\n")
                await writer.drain()
                await writer.start_tls(context)
            await echo(reader, writer)
        except Exception as e:  # Reported; the server goes on.
            print(f"FAIL: server connection: {e!r}", flush=True)

    server = await asyncio.start_server(
        on_connection, "127.0.0.1", 0, ssl=None if args.starttls else context)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


async def client(args):
    context = ssl.create_default_context(cafile=args.ca)
    if args.starttls:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.write(b"STARTTLS\n")
        line = await reader.readline()
        if line != b"GO\n":
            raise RuntimeError(f"expected GO, got {line!r}")
        await writer.start_tls(context, server_hostname="localhost")
    else:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", args.port, ssl=context, server_hostname="localhost")
    sent = pattern(args.bytes)

    async def send():
        writer.write(sent)
        await writer.drain()

    # Reading while sending: the echo comes back as the bytes go out, and
    # waiting for the drain first would stall on full buffers both ways.
    _, echoed = await asyncio.gather(send(), reader.readexactly(len(sent)))
    if echoed != sent:
        at = next(i for i in range(len(sent)) if echoed[i] != sent[i])
        raise RuntimeError(f"echo differs at byte {at}")
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    await writer.wait_closed()
    print(f"OK {len(echoed)} {version}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--port", type=int)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--starttls", action="store_true")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args) if args.mode == "server" else client(args))
    except Exception as e:
        print(f"FAIL: {e!r}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
