/** Where the backbone is and how to log in, parsed from `rabbitmq-stream://` URLs. */
export interface BackboneEndpoint {
  hosts: Array<{ host: string; port: number }>;
  username: string;
  password: string;
  vhost: string;
}

/** The stream protocol's port when a URL names none. */
export const DEFAULT_STREAM_PORT = 5552;
const SCHEME = 'rabbitmq-stream://';

/**
 * Parses `rabbitmq-stream://user:pass@h1:5552,h2:5552/vhost` (several URLs
 * may be given; their hosts are tried in order and must share credentials
 * and vhost). User and password default to `guest`, the port to 5552, the
 * vhost to `/` (`%2F` in a URL). Throws an `Error` saying what is wrong,
 * never echoing the password.
 */
export function parseBackboneUrls(urls: readonly string[]): BackboneEndpoint {
  if (urls.length === 0) throw new Error('names no URL; give rabbitmq-stream://user:pass@host:5552');
  let endpoint: BackboneEndpoint | undefined;
  for (const url of urls) {
    const parsed = parseOne(url);
    if (endpoint === undefined) endpoint = parsed;
    else {
      if (parsed.username !== endpoint.username || parsed.password !== endpoint.password || parsed.vhost !== endpoint.vhost) {
        throw new Error(`URL ${redactBackboneUrl(url)} has other credentials or vhost than the first; all hosts of one backbone share them`);
      }
      endpoint.hosts.push(...parsed.hosts);
    }
  }
  return endpoint as BackboneEndpoint;
}

function parseOne(url: string): BackboneEndpoint {
  const shown = redactBackboneUrl(url);
  if (!url.startsWith(SCHEME)) throw new Error(`URL ${shown} must start with ${SCHEME}`);
  let rest = url.slice(SCHEME.length);
  let vhost = '/';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const path = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
    if (path !== '') vhost = decode(path, 'vhost', shown);
  }
  let username = 'guest';
  let password = 'guest';
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userInfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userInfo.indexOf(':');
    username = decode(colon >= 0 ? userInfo.slice(0, colon) : userInfo, 'user', shown);
    password = colon >= 0 ? decode(userInfo.slice(colon + 1), 'password', shown) : '';
    if (username === '') throw new Error(`URL ${shown} has an empty user name`);
  }
  if (rest === '') throw new Error(`URL ${shown} names no host`);
  const hosts = rest.split(',').map((spec) => parseHost(spec, shown));
  return { hosts, username, password, vhost };
}

function parseHost(spec: string, shown: string): { host: string; port: number } {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(spec);
  if (match === null) throw new Error(`URL ${shown} has an invalid host "${spec}" (expected host or host:port)`);
  const port = match[2] === undefined ? DEFAULT_STREAM_PORT : Number(match[2]);
  if (port < 1 || port > 65535) throw new Error(`URL ${shown} has port ${port}, not 1-65535`);
  const host = (match[1] as string).replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

function decode(text: string, what: string, shown: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Error(`URL ${shown} has a badly escaped ${what}`);
  }
}

/** `url` with its password replaced by `REDACTED`, for logs and `--print-config`. */
export function redactBackboneUrl(url: string): string {
  return url.replace(/^([a-z+-]+:\/\/[^:@/]*):[^@/]*@/i, '$1:REDACTED@');
}
