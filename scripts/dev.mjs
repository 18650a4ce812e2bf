// `npm run dev`: builds the packages when their sources changed, quietly (the build's
// output is shown only when it fails), then runs `relaymq dev` in this same process.
//
// In-process rather than `build && node cli.js dev` in the script line: npm forwards
// SIGTERM to its child, and a `sh -c` between them would die without passing it on,
// leaving the brokers running and their temporary data behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outputs = ['packages/sdk/dist/node.js', 'packages/sdk/dist/index.js', 'packages/broker/dist/cli.js'].map((p) => join(root, p));
const inputs = ['packages/sdk', 'packages/broker'].flatMap((pkg) => [
  join(root, pkg, 'src'),
  join(root, pkg, 'package.json'),
  join(root, pkg, 'tsup.config.ts'),
]);

/** Newest modification time under `path` (a file or a directory), tests excluded. */
function newest(path) {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return path.endsWith('.test.ts') ? 0 : stat.mtimeMs;
  return readdirSync(path).reduce((latest, name) => Math.max(latest, newest(join(path, name))), 0);
}

const built = outputs.every((p) => existsSync(p)) ? Math.min(...outputs.map((p) => statSync(p).mtimeMs)) : 0;
if (built < Math.max(...inputs.map(newest), statSync(join(root, 'tsconfig.json')).mtimeMs)) {
  const started = Date.now();
  process.stdout.write('relaymq dev: building the packages...\n');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, encoding: 'utf8', shell: process.platform === 'win32' });
  if (build.status !== 0) {
    process.stderr.write(`${build.stdout ?? ''}${build.stderr ?? ''}${build.error?.message ?? ''}\nrelaymq dev: the build failed (output above)\n`);
    process.exit(build.status ?? 1);
  }
  process.stdout.write(`relaymq dev: built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

// npm does not pass a SIGTERM on to its script: once npm is gone (this process's parent changes),
// stop as on SIGTERM, so the brokers stop and the temporary data is removed. Only under npm run dev:
// `relaymq dev` started some other way may outlive its parent on purpose (nohup).
const parent = process.ppid;
const orphanCheck = setInterval(() => {
  if (process.ppid === parent) return;
  clearInterval(orphanCheck);
  process.kill(process.pid, 'SIGTERM');
}, 500);
orphanCheck.unref();

// The CLI reads its arguments from process.argv: `relaymq dev <what npm passed after -->`.
process.argv = [process.argv[0], join(root, 'packages/broker/dist/cli.js'), 'dev', ...process.argv.slice(2)];
await import(new URL('../packages/broker/dist/cli.js', import.meta.url).href);
