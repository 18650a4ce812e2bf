import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The examples and the documentation's code attach a client's listeners before
 * the call that can emit what they listen for: `start()` (the first dial's
 * `connecting`/`reconnecting`), `subscribe()` (a group's first `assigned`),
 * and never on a client `connect()` already started. Code copied from them
 * must not miss the first event.
 */

const ROOT = new URL('..', import.meta.url);

/** A piece of code to check: a whole example file, or one TypeScript block of a Markdown file. */
interface CodeUnit {
  where: string;
  code: string;
}

async function codeUnits(): Promise<CodeUnit[]> {
  const units: CodeUnit[] = [];
  for (const name of (await readdir(new URL('examples/', ROOT))).filter((n) => n.endsWith('.ts'))) {
    units.push({ where: `examples/${name}`, code: await readFile(new URL(`examples/${name}`, ROOT), 'utf8') });
  }
  const docs = (await readdir(new URL('docs/', ROOT))).filter((n) => n.endsWith('.md')).map((n) => `docs/${n}`);
  for (const path of ['README.md', 'packages/sdk/README.md', 'packages/broker/README.md', ...docs]) {
    const text = await readFile(new URL(path, ROOT), 'utf8');
    for (const block of text.matchAll(/^\s*```(?:ts|typescript)\n([\s\S]*?)^\s*```/gm)) {
      const line = text.slice(0, block.index).split('\n').length;
      units.push({ where: `${path}:${line}`, code: block[1] as string });
    }
  }
  return units;
}

/** The client variables of a piece of code: created by createClient()/connect(), or named `client` in a snippet. */
function clientVariables(code: string): Set<string> {
  const names = new Set<string>();
  for (const m of code.matchAll(/\b(?:const|let)\s+(\w+)\s*=\s*(?:await\s+)?(?:createClient|connect)\(/g)) names.add(m[1] as string);
  if (/\bclient\.(?:on|once)\(/.test(code)) names.add('client');
  return names;
}

/** Where a listener is attached too late, as `variable.on('event') after <call>` lines. */
function lateListeners(code: string): string[] {
  const late: string[] = [];
  for (const v of clientVariables(code)) {
    const starts = [
      new RegExp(`\\b${v}\\.start\\(`),
      new RegExp(`\\b${v}\\.subscribe\\(`),
      new RegExp(`\\b(?:const|let)\\s+${v}\\s*=\\s*await\\s+connect\\(`),
    ];
    const first = starts
      .map((re) => re.exec(code))
      .filter((m): m is RegExpExecArray => m !== null)
      .sort((a, b) => a.index - b.index)[0];
    if (first === undefined) continue;
    for (const listener of code.matchAll(new RegExp(`\\b${v}\\.(on|once)\\(\\s*'(\\w+)'`, 'g'))) {
      if (listener.index > first.index) late.push(`${v}.${listener[1]}('${listener[2]}') after ${first[0].trim()}`);
    }
  }
  return late;
}

describe('examples and documentation attach listeners first', () => {
  it('finds a listener attached after start(), subscribe() or connect() (the check itself)', () => {
    expect(lateListeners("const c = await connect(o);\nc.on('reconnecting', f);")).toEqual(["c.on('reconnecting') after const c = await connect("]);
    expect(lateListeners("await client.subscribe('a', h, { group: 'g' });\nclient.on('assigned', f);")).toEqual(["client.on('assigned') after client.subscribe("]);
    expect(lateListeners("const c = createClient(o);\nawait c.start();\nc.once('failover', f);")).toEqual(["c.once('failover') after c.start("]);
    expect(lateListeners("const c = createClient(o);\nc.on('reconnecting', f);\nawait c.start();\nawait c.subscribe('a', h);")).toEqual([]);
  });

  it('holds for every example and every TypeScript block of the READMEs and docs/', async () => {
    const units = await codeUnits();
    expect(units.filter((u) => u.where.startsWith('examples/')).length).toBeGreaterThanOrEqual(4);
    const withListeners = units.filter((u) => /\.(?:on|once)\(\s*'/.test(u.code));
    expect(withListeners.length).toBeGreaterThanOrEqual(5);
    const late = units.flatMap((u) => lateListeners(u.code).map((l) => `${u.where}: ${l}`));
    expect(late).toEqual([]);
  });
});

describe('examples use the application API', () => {
  it('imports nothing of the wire protocol (@relaymq/sdk/protocol is for the broker and protocol tools)', async () => {
    const units = await codeUnits();
    const protocolImports = units.filter((u) => /from\s+'@relaymq\/sdk\/protocol'/.test(u.code)).map((u) => u.where);
    expect(protocolImports).toEqual([]);
  });
});
