import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDirs } from './support/temp-dirs.js';

/**
 * Releasing runs `changeset version` (`npm run version-packages`): it turns
 * the pending changesets into CHANGELOG entries and one version bump shared by
 * both packages. This runs that step on a copy of the repository's release
 * files, so a broken config, a changeset naming an unknown package or a
 * package that left the fixed group fails here rather than on release day.
 */

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHANGESET = join(ROOT, 'node_modules', '.bin', 'changeset');
const PACKAGES = ['sdk', 'broker'] as const;
const tempDir = tempDirs('relaymq-release-');

interface Manifest {
  version: string;
  files?: string[];
  dependencies?: Record<string, string>;
}

async function manifest(dir: string, pkg: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'packages', pkg, 'package.json'), 'utf8')) as Manifest;
}

/** Pending changesets: every markdown file of `.changeset/` but its README. */
async function pendingChangesets(dir: string): Promise<string[]> {
  return (await readdir(join(dir, '.changeset'))).filter((f) => f.endsWith('.md') && f !== 'README.md');
}

/** The packages a changeset names (its front matter) and its summary. */
function parseChangeset(text: string): { packages: string[]; summary: string } {
  const [, front = '', ...body] = text.split(/^---$/m);
  const packages = [...front.matchAll(/^"([^"]+)":\s*(?:major|minor|patch)\s*$/gm)].map((m) => m[1] as string);
  return { packages, summary: body.join('---').trim() };
}

describe('releasing with changesets', () => {
  it('releases the SDK and the broker under one version (they share the wire protocol)', async () => {
    const config = JSON.parse(await readFile(join(ROOT, '.changeset', 'config.json'), 'utf8')) as { fixed: string[][] };
    expect(config.fixed).toContainEqual(expect.arrayContaining(PACKAGES.map((pkg) => `@relaymq/${pkg}`)));
  });

  it('ships a CHANGELOG in each package', async () => {
    for (const pkg of PACKAGES) {
      expect((await manifest(ROOT, pkg)).files, pkg).toContain('CHANGELOG.md');
      expect(await readFile(join(ROOT, 'packages', pkg, 'CHANGELOG.md'), 'utf8')).toMatch(new RegExp(`^# @relaymq/${pkg}\\n`));
    }
  });

  it('versions both packages together and writes every pending changeset into their CHANGELOGs', async () => {
    const dir = await tempDir();
    await cp(join(ROOT, 'package.json'), join(dir, 'package.json'));
    await cp(join(ROOT, '.changeset'), join(dir, '.changeset'), { recursive: true });
    for (const pkg of PACKAGES) {
      await mkdir(join(dir, 'packages', pkg), { recursive: true });
      for (const file of ['package.json', 'CHANGELOG.md']) await cp(join(ROOT, 'packages', pkg, file), join(dir, 'packages', pkg, file));
    }
    const pending = await pendingChangesets(dir);
    const changesets = await Promise.all(pending.map(async (f) => parseChangeset(await readFile(join(dir, '.changeset', f), 'utf8'))));
    const before = await manifest(dir, 'sdk');

    await run(CHANGESET, ['version'], { cwd: dir, timeout: 60_000 });

    const [sdk, broker] = await Promise.all(PACKAGES.map((pkg) => manifest(dir, pkg)));
    expect(broker?.version).toBe(sdk?.version);
    expect(broker?.dependencies?.['@relaymq/sdk']).toBe(sdk?.version);
    if (pending.length > 0) expect(sdk?.version).not.toBe(before.version);
    for (const pkg of PACKAGES) {
      const changelog = await readFile(join(dir, 'packages', pkg, 'CHANGELOG.md'), 'utf8');
      expect(changelog).toContain(`## ${sdk?.version}\n`);
      for (const { packages, summary } of changesets) {
        if (packages.includes(`@relaymq/${pkg}`)) expect(changelog, `${pkg}: ${summary.slice(0, 60)}`).toContain(summary.split('\n')[0]);
      }
    }
    expect(await pendingChangesets(dir)).toEqual([]);
  });
});
