import { describe, expect, it } from 'vitest';
import { parseBackboneUrls, redactBackboneUrl } from './url.js';

describe('backbone URLs', () => {
  it('parses hosts, credentials and vhost, with defaults', () => {
    expect(parseBackboneUrls(['rabbitmq-stream://user:p%40ss@h1:5552,h2:6000/my%2Fvhost'])).toEqual({
      hosts: [{ host: 'h1', port: 5552 }, { host: 'h2', port: 6000 }],
      username: 'user',
      password: 'p@ss',
      vhost: 'my/vhost',
    });
    expect(parseBackboneUrls(['rabbitmq-stream://h1', 'rabbitmq-stream://[::1]:7000'])).toEqual({
      hosts: [{ host: 'h1', port: 5552 }, { host: '::1', port: 7000 }],
      username: 'guest',
      password: 'guest',
      vhost: '/',
    });
  });

  it('says what is wrong without echoing the password', () => {
    const bad = (url: string): string => {
      try {
        parseBackboneUrls([url]);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error(`accepted ${url}`);
    };
    expect(bad('amqp://u:secret@h1')).toMatch(/must start with rabbitmq-stream:\/\//);
    expect(bad('amqp://u:secret@h1')).not.toContain('secret');
    expect(bad('rabbitmq-stream://u:secret@')).toMatch(/names no host/);
    expect(bad('rabbitmq-stream://u:secret@h1:99999')).toMatch(/port 99999/);
    expect(bad('rabbitmq-stream://u:secret@h 1')).toMatch(/invalid host/);
    expect(() => parseBackboneUrls(['rabbitmq-stream://a:b@h1', 'rabbitmq-stream://c:d@h2'])).toThrow(/other credentials/);
  });

  it('redacts the password', () => {
    expect(redactBackboneUrl('rabbitmq-stream://user:secret@h1:5552,h2')).toBe('rabbitmq-stream://user:REDACTED@h1:5552,h2');
    expect(redactBackboneUrl('rabbitmq-stream://h1')).toBe('rabbitmq-stream://h1');
  });
});
