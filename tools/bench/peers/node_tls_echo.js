#!/usr/bin/env node
// A TLS echo server on Node (its OpenSSL, on libuv), built-in modules only:
// per connection socket.pipe(socket), which writes back what was read and
// pauses reading while a write is pending (backpressure). --tls is on by
// default; --notls (or --tls=false) serves plain TCP with `net`, the same
// loop, so that Node's TLS cost can be told from Node's own.
//
//   node node_tls_echo.js --port=0 --cert=cert.pem --key=key.pem
//   node node_tls_echo.js --port=0 --notls
//   # prints "listening on 127.0.0.1:PORT"
//
// A peer for tools/bench/echo_bench.sh; see docs/benchmarks.md.

'use strict';

const fs = require('fs');
const net = require('net');
const tls = require('tls');

function die(message) {
  process.stderr.write(`node_tls_echo: ${message}\n`);
  process.exit(1);
}

// Flags as the other peers take them: --name=value or --name value, and for
// the boolean --tls also --notls, --no-tls and --tls=true|false.
function parseFlags(argv) {
  const flags = {port: 0, tls: true, cert: '', key: ''};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--tls') {
      flags.tls = true;
    } else if (arg === '--notls' || arg === '--no-tls') {
      flags.tls = false;
    } else if (arg.startsWith('--tls=')) {
      const value = arg.slice('--tls='.length);
      if (value !== 'true' && value !== 'false') die(`bad flag ${arg}`);
      flags.tls = value === 'true';
    } else {
      const m = /^--(port|cert|key)(?:=(.*))?$/.exec(arg);
      if (!m) die(`unknown flag ${arg}`);
      let value = m[2];
      if (value === undefined) {
        if (++i >= argv.length) die(`--${m[1]} needs a value`);
        value = argv[i];
      }
      flags[m[1]] = value;
    }
  }
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    die(`bad --port=${flags.port}`);
  }
  flags.port = port;
  return flags;
}

function readPem(flag, path) {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    die(`--${flag}=${path}: ${e.message}`);
  }
}

function echo(socket) {
  socket.setNoDelay(true);
  // A reset by the client is the end of the connection, not of the server.
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
}

function main() {
  const flags = parseFlags(process.argv.slice(2));
  // noDelay: TCP_NODELAY from accept on, so also for the TLS handshake (as
  // asio_echo has it), not only once echo() runs.
  const netOptions = {noDelay: true};
  let server;
  if (flags.tls) {
    if (!flags.cert || !flags.key) die('--tls needs --cert and --key (PEM files)');
    const options = {
      ...netOptions,
      cert: readPem('cert', flags.cert),
      key: readPem('key', flags.key),
      minVersion: 'TLSv1.2',
      // Node's servers default to their own cipher order (AES-256 first);
      // the client's, as OpenSSL's default, lets loadgen pick for all peers.
      honorCipherOrder: false,
    };
    try {
      server = tls.createServer(options, echo);
    } catch (e) {
      die(`--cert=${flags.cert} --key=${flags.key}: ${e.message}`);
    }
  } else {
    server = net.createServer(netOptions, echo);
  }
  server.on('error', (e) => die(e.message));
  server.listen({host: '127.0.0.1', port: flags.port, backlog: 1024}, () => {
    process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
  });
}

main();
