import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/node.ts', 'src/browser.ts', 'src/protocol/index.ts'],
  format: ['esm'],
  target: 'es2022',
  dts: { compilerOptions: { composite: false, paths: {} } },
  sourcemap: true,
  clean: true,
  splitting: true,
  tsconfig: '../../tsconfig.json',
});
