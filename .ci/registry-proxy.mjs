// The way out of .ci/fresh-debian's network namespace, to the package registries and nowhere else.
//   node registry-proxy.mjs serve <socket>        on the host: an HTTP proxy on a unix socket
//   node registry-proxy.mjs relay <socket> <port> in the namespace: 127.0.0.1:<port> to that socket
import { chmodSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const REGISTRIES = new Set(['registry.npmjs.org', 'deb.debian.org', 'archive.debian.org']);
const [mode, socket, port] = process.argv.slice(2);

/** Pipes two sockets into each other; either one failing ends both. */
function join(a, b) {
  a.pipe(b).on('error', () => a.destroy());
  b.pipe(a).on('error', () => b.destroy());
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

if (mode === 'serve') {
  rmSync(socket, { force: true });
  const server = http.createServer((req, res) => {
    // Plain HTTP (Debian's mirror): the request line carries the whole URL.
    const url = URL.canParse(req.url) ? new URL(req.url) : undefined;
    if (!url || !REGISTRIES.has(url.hostname)) {
      console.error(`registry-proxy: refused ${req.url}`);
      res.writeHead(403).end();
      return;
    }
    const upstream = http.request(
      {
        host: url.hostname,
        port: url.port || 80,
        path: url.pathname + url.search,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  // HTTPS (the npm registry): a tunnel to port 443 of a registry.
  server.on('connect', (req, client, head) => {
    client.on('error', () => client.destroy());
    const [host, to] = req.url.split(':');
    if (!REGISTRIES.has(host) || to !== '443') {
      console.error(`registry-proxy: refused CONNECT ${req.url}`);
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const upstream = net.connect(443, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      join(client, upstream);
    });
    upstream.on('error', () => client.destroy());
  });
  server.listen(socket, () => chmodSync(socket, 0o600));
} else if (mode === 'relay') {
  net.createServer((client) => join(client, net.connect(socket))).listen(Number(port), '127.0.0.1');
} else {
  console.error('usage: registry-proxy.mjs serve <socket> | relay <socket> <port>');
  process.exit(2);
}
