#!/usr/bin/python3
"""A TCP echo server on uvloop (Debian's python3-uvloop, hence /usr/bin/python3).

Default mode, protocol-based: data_received -> transport.write, the fastest
thing asyncio code can do. Write-side flow control is honoured (pause_writing
pauses reading), which costs nothing while buffers stay small.

--streams mode: asyncio streams, i.e. a coroutine per connection doing
reader.read(262144), writer.write, await writer.drain() -- the shape of
sluice's coroutine streams.

--tls (with --cert and --key, PEM files): either mode over uvloop's TLS
(Python's ssl module, i.e. OpenSSL), TLS 1.2 minimum.

    /usr/bin/python3 uvloop_echo.py --port=0 [--streams]
        [--tls --cert=cert.pem --key=key.pem]
    # prints "listening on 127.0.0.1:PORT"

A peer for tools/bench/echo_bench.sh; see docs/benchmarks.md.
"""

import argparse
import asyncio
import socket
import ssl
import sys

import uvloop


def set_nodelay(transport):
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        set_nodelay(transport)

    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def echo_stream(reader, writer):
    set_nodelay(writer.transport)
    try:
        while True:
            data = await reader.read(262144)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the client reset the connection: nothing to echo any more
    finally:
        writer.close()


def tls_context(cert, key):
    # Python 3.10+ already refuses TLS < 1.2; pinned so that older ones match
    # the other peers.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Python sets OP_CIPHER_SERVER_PREFERENCE (its list starts with AES-256);
    # OpenSSL's and Node's default is the client's order, so that loadgen's
    # --tls_ciphersuites picks the cipher for every peer alike.
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert, key)
    return context


async def serve(port, streams, tls):
    # tls is None for plain TCP (create_server's default).
    if streams:
        server = await asyncio.start_server(
            echo_stream, "127.0.0.1", port, backlog=1024, ssl=tls)
    else:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            EchoProtocol, "127.0.0.1", port, backlog=1024, ssl=tls)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--streams", action="store_true",
                        help="asyncio streams instead of a Protocol")
    parser.add_argument("--tls", action="store_true",
                        help="serve TLS; needs --cert and --key")
    parser.add_argument("--cert", help="PEM certificate chain (--tls)")
    parser.add_argument("--key", help="PEM private key (--tls)")
    args = parser.parse_args()
    tls = None
    if args.tls:
        if not args.cert or not args.key:
            parser.error("--tls needs --cert and --key (PEM files)")
        try:
            tls = tls_context(args.cert, args.key)
        except (OSError, ssl.SSLError) as e:
            parser.error(f"--cert={args.cert} --key={args.key}: {e}")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(args.port, args.streams, tls))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
