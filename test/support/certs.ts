import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of one certificate: paths, and the text of each. */
export interface CertFiles {
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
}

/** A throwaway PKI for TLS tests, generated with the `openssl` CLI; nothing private is ever committed. */
export interface TestPki {
  dir: string;
  /** The CA brokers and clients trust. */
  ca: CertFiles;
  /** A server certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1), signed by `ca`. */
  server: CertFiles;
  /** A client certificate (CN=client-1), signed by `ca`. */
  client: CertFiles;
  /** A CA nobody trusts, and a 127.0.0.1 certificate it signed: an impostor. */
  rogueCa: CertFiles;
  rogue: CertFiles;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function files(dir: string, name: string): CertFiles {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-days', '2', '-subj', `/CN=relaymq test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, extensions: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

/** Generates a CA, a server and a client certificate, and an impostor pair, into a temp dir. */
export function generatePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'relaymq-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue-ca');
  // Brokers use one certificate as server (clients, accepting peers) and as client (dialing peers).
  const both = 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n';
  makeLeaf(dir, 'server', 'ca', '127.0.0.1', both);
  makeLeaf(dir, 'client', 'ca', 'client-1', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  makeLeaf(dir, 'rogue', 'rogue-ca', '127.0.0.1', both);
  return {
    dir,
    ca: files(dir, 'ca'),
    server: files(dir, 'server'),
    client: files(dir, 'client'),
    rogueCa: files(dir, 'rogue-ca'),
    rogue: files(dir, 'rogue'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
