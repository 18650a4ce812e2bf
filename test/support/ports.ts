import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * Loopback ports that were free a moment ago, for configs that need ports up
 * front. They are taken from below the kernel's ephemeral range: a port from
 * inside it (what `listen(0)` hands out) can meanwhile become the local end
 * of some outgoing connection — a broker dialing its peers — and stay taken
 * for that connection's whole life, so the broker meant to listen there
 * fails with EADDRINUSE on every restart.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  const [low, high] = belowEphemeral();
  for (let tries = 0; ports.length < count && tries < count * 50; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  while (ports.length < count) ports.push(await anyPort()); // the range is crowded: fall back to the kernel's choice
  return ports;
}

/** A range below the ephemeral ports (Linux: `ip_local_port_range`; elsewhere the IANA dynamic range starts at 49152). */
function belowEphemeral(): [number, number] {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    // not Linux: keep the default
  }
  const high = Number.isInteger(ephemeralLow) && ephemeralLow > 12_000 ? ephemeralLow : 32768;
  return [high - 10_000, high];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function anyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
