#!/usr/bin/env node
// The `relaymq` command. This committed file, not dist/cli.js, is the package's
// bin: npm links a bin only if its file exists, so in a fresh clone `npm ci`
// (which runs before the build) would otherwise leave `npx relaymq` unlinked.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('relaymq: the broker is not built (packages/broker/dist/cli.js is missing): run `npm run build` in the repository first\n');
  process.exit(2);
}
await import(cli.href);
