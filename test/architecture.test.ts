/**
 * The shape of the code, checked on every `npm test` (alone: `npm run check:layers`):
 *
 * - no import cycle among the source files of either package;
 * - no import from a lower layer of the broker (or the SDK) to a higher one, nor
 *   between two sibling layers (`LEVELS` below is the picture of docs/architecture.md);
 * - the broker takes only `@relaymq/sdk/protocol` from the SDK, and the SDK nothing from the broker;
 * - shipped code imports nothing outside its package's src/ (no test double reaches the bundle);
 * - no SDK file but its Node entry point names a Node built-in or `ws`, not even in an
 *   `import type` (src/portability.test.ts bundles the browser entry; esbuild erases type
 *   imports, so it cannot see those, nor files the browser entry does not reach).
 *
 * It reads the import declarations (`import`, `import type`, `export … from`, `import()`)
 * of every non-test `.ts` file under packages/{broker,sdk}/src with the TypeScript parser:
 * no build, no process, well under a second.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('..', import.meta.url));

/** One import declaration of a file. */
interface Edge {
  from: string;
  /** The specifier as written. */
  specifier: string;
  /** The imported file (package-relative, like `from`) for a relative specifier. */
  to?: string;
  /** Erased at runtime: `import type`, `export type … from`, or every named binding marked `type`. */
  typeOnly: boolean;
  /** An `import()` or `require()`: loaded when that code runs, not with the file. */
  dynamic?: boolean;
  line: number;
}

interface Graph {
  /** Package-relative paths of the non-test source files, sorted. */
  files: string[];
  edges: Edge[];
}

function sourceFiles(dir: string, under = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, under), { withFileTypes: true })) {
    const path = under === '' ? entry.name : `${under}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(dir, path));
    else if (path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

function everyBindingIsType(elements: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>): boolean {
  return elements.length > 0 && elements.every((element) => element.isTypeOnly);
}

/** The import declarations of one file. */
function importsOf(srcDir: string, file: string): Edge[] {
  const text = readFileSync(join(srcDir, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edges: Edge[] = [];
  const add = (literal: ts.Expression, typeOnly: boolean, dynamic = false): void => {
    if (!ts.isStringLiteralLike(literal)) return;
    const specifier = literal.text;
    const line = source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1;
    const edge: Edge = { from: file, specifier, typeOnly, line };
    if (dynamic) edge.dynamic = true;
    if (specifier.startsWith('.')) edge.to = resolveRelative(srcDir, file, specifier);
    edges.push(edge);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined && clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) && everyBindingIsType(clause.namedBindings.elements)));
      add(node.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      const clause = node.exportClause;
      add(node.moduleSpecifier, node.isTypeOnly || (clause !== undefined && ts.isNamedExports(clause) && everyBindingIsType(clause.elements)));
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true); // `import('./x.js').T` in a type position
    } else if (ts.isCallExpression(node) && node.arguments[0] !== undefined) {
      const isDynamicImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if (isDynamicImport || isRequire) add(node.arguments[0], false, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/** `./x.js` (or `./dir/index.js`) from `file`, as a path relative to the package's src. */
function resolveRelative(srcDir: string, file: string, specifier: string): string {
  const absolute = resolve(srcDir, dirname(file), specifier);
  const candidates = [absolute.replace(/\.js$/, '.ts'), `${absolute}.ts`, join(absolute, 'index.ts')];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found === undefined) throw new Error(`${file}: cannot resolve '${specifier}'`);
  return relative(srcDir, found).split('\\').join('/');
}

function readGraph(pkg: 'broker' | 'sdk'): Graph {
  const srcDir = join(repo, 'packages', pkg, 'src');
  const files = sourceFiles(srcDir);
  return { files, edges: files.flatMap((file) => importsOf(srcDir, file)) };
}

/** Every import cycle (one per strongly connected component, Tarjan), each as `a → b → … → a`. */
function findCycles(graph: Graph): string[][] {
  const next = new Map<string, string[]>(graph.files.map((file) => [file, []]));
  for (const edge of graph.edges) if (edge.to !== undefined) next.get(edge.from)?.push(edge.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const connect = (file: string): void => {
    index.set(file, counter);
    low.set(file, counter++);
    stack.push(file);
    onStack.add(file);
    for (const to of next.get(file) ?? []) {
      if (!index.has(to)) {
        connect(to);
        low.set(file, Math.min(low.get(file) as number, low.get(to) as number));
      } else if (onStack.has(to)) low.set(file, Math.min(low.get(file) as number, index.get(to) as number));
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop() as string;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    const selfLoop = (next.get(file) ?? []).includes(file);
    if (component.length > 1 || selfLoop) components.push(component);
  };
  for (const file of graph.files) if (!index.has(file)) connect(file);
  // One concrete cycle per component: the shortest way back to its first file (breadth first).
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0] as string;
    const cameFrom = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const file = queue[i] as string;
      for (const to of next.get(file) ?? []) {
        if (!members.has(to)) continue;
        if (to === start) {
          const path = [start];
          for (let at: string | undefined = file; at !== undefined && at !== start; at = cameFrom.get(at)) path.splice(1, 0, at);
          return [...path, start];
        }
        if (!cameFrom.has(to)) {
          cameFrom.set(to, file);
          queue.push(to);
        }
      }
    }
    return [...component, component[0] as string];
  });
}

/** A layer: the files it holds (a folder ends with `/`). */
interface Layer {
  name: string;
  holds: string[];
  /**
   * Lower layers may import this layer's types (`import type`), never its values:
   * the option types are the vocabulary every layer reads its settings in.
   */
  typesFromBelow?: boolean;
}

/**
 * The broker's layers, highest level first; a level may hold sibling layers. A file may
 * import its own layer and any layer of a lower level; never a higher level, nor a
 * sibling. A file matches the layer with the longest matching entry.
 */
const BROKER_LEVELS: Layer[][] = [
  [{ name: 'composition', holds: ['broker.ts', 'index.ts', 'cli.ts', 'cli-help.ts', 'cli-admin.ts', 'cli-status.ts', 'cli-signals.ts', 'dev-cluster.ts', 'config.ts'] }],
  // The option schema and its timing sections (presets, ms → ticks).
  [{ name: 'options', holds: ['options.ts', 'tuning.ts'], typesFromBelow: true }],
  [{ name: 'server', holds: ['server/'] }],
  // Read the engine's state for operators: status, metrics, alerts, admin HTTP, the dashboard page.
  [{ name: 'operations', holds: ['observability/', 'dashboard/'] }],
  [{ name: 'engine', holds: ['engine/'] }],
  [{ name: 'runtime', holds: ['runtime/'] }],
  [
    { name: 'storage', holds: ['storage/'] },
    { name: 'net', holds: ['net/'] },
  ],
  [
    { name: 'security', holds: ['security/'] },
    // The two seams every layer reports through: a log function and an observer interface.
    { name: 'seams', holds: ['observability/logger.ts', 'observability/observer.ts'] },
  ],
  // Four pure cores (no I/O, clock or randomness: packages/broker/test/purity.test.ts), independent of each other.
  [
    { name: 'core/raft', holds: ['core/raft/'] },
    { name: 'core/swim', holds: ['core/swim/'] },
    { name: 'core/partition', holds: ['core/partition/'] },
    { name: 'core/metadata', holds: ['core/metadata/'] },
  ],
];

/** The SDK's layers (nats.js-like: protocol → transport → connection → publish/subscribe → client → entry points). */
const SDK_LEVELS: Layer[][] = [
  [{ name: 'entry points', holds: ['index.ts', 'node.ts', 'browser.ts'] }],
  [{ name: 'client', holds: ['client.ts', 'events.ts'] }],
  [
    { name: 'publish', holds: ['publish/'] },
    { name: 'subscribe', holds: ['subscribe/'] },
  ],
  [{ name: 'connection', holds: ['connection/'] }],
  [{ name: 'options', holds: ['options.ts'] }],
  [{ name: 'transport', holds: ['transport/'] }],
  [{ name: 'protocol', holds: ['protocol/'] }],
];

/**
 * Known upward imports, each with the reason it is still there. Keep it short and empty:
 * an entry whose file still exists but no longer makes that import fails the test, so the
 * list cannot outlive its cause.
 */
const ALLOWED_UPWARD: Array<{ from: string; to: string; why: string }> = [];

interface Placed {
  layer: Layer;
  level: number;
}

function placer(levels: Layer[][]): (file: string) => Placed | undefined {
  return (file) => {
    let best: (Placed & { length: number }) | undefined;
    levels.forEach((layers, level) => {
      for (const layer of layers) {
        for (const entry of layer.holds) {
          const matches = entry.endsWith('/') ? file.startsWith(entry) : file === entry;
          if (matches && (best === undefined || entry.length > best.length)) best = { layer, level, length: entry.length };
        }
      }
    });
    return best === undefined ? undefined : { layer: best.layer, level: best.level };
  };
}

/** Every import that points up a level or sideways to a sibling layer. */
function layerViolations(graph: Graph, levels: Layer[][], allowed: typeof ALLOWED_UPWARD): { violations: string[]; unused: string[] } {
  const place = placer(levels);
  const violations: string[] = [];
  const used = new Set<number>();
  for (const edge of graph.edges) {
    if (edge.to === undefined) continue;
    const from = place(edge.from);
    const to = place(edge.to);
    if (from === undefined || to === undefined) continue; // reported by the "every file has a layer" test
    if (from.layer === to.layer || to.level > from.level) continue;
    if (to.layer.typesFromBelow === true && edge.typeOnly) continue;
    const exception = allowed.findIndex((a) => a.from === edge.from && a.to === edge.to);
    if (exception >= 0) {
      used.add(exception);
      continue;
    }
    const how = to.level < from.level ? 'up' : 'sideways';
    violations.push(`${edge.from}:${edge.line} (${from.layer.name}) imports ${edge.to} (${to.layer.name}): ${how}`);
  }
  const exists = new Set(graph.files);
  const unused = allowed.filter((a, i) => !used.has(i) && exists.has(a.from)).map((a) => `${a.from} -> ${a.to}`);
  return { violations, unused };
}

/** The packages `entry` loads at runtime: through value imports, and with `dynamic` through `import()` too. */
function packagesLoadedBy(graph: Graph, entry: string, dynamic: boolean): Set<string> {
  const packages = new Set<string>();
  const seen = new Set([entry]);
  const queue = [entry];
  for (let i = 0; i < queue.length; i++) {
    for (const edge of graph.edges) {
      if (edge.from !== queue[i] || edge.typeOnly || (edge.dynamic === true && !dynamic)) continue;
      if (edge.to === undefined) packages.add(edge.specifier);
      else if (!seen.has(edge.to)) {
        seen.add(edge.to);
        queue.push(edge.to);
      }
    }
  }
  return packages;
}

/**
 * Packages a broker loads only when its options use them (backbone mode, an
 * admin port or alerts, auth, a YAML config file) or a publisher traces:
 * importing them was a third of an empty broker's start (issue 12,
 * docs/benchmarks.md).
 */
const LOADED_ON_DEMAND = ['rabbitmq-stream-js-client', 'prom-client', 'jose', 'yaml', '@opentelemetry/api'];

const NODE_BUILTINS = new Set(builtinModules);
const isNodeOnly = (specifier: string): boolean =>
  specifier.startsWith('node:') || NODE_BUILTINS.has(specifier.split('/')[0] as string) || specifier === 'ws' || specifier.startsWith('ws/');

const broker = readGraph('broker');
const sdk = readGraph('sdk');

describe('architecture: imports', () => {
  it('reads a sane number of files and imports (the parser sees them)', () => {
    const internal = (graph: Graph): number => graph.edges.filter((edge) => edge.to !== undefined).length;
    console.info(
      `[architecture] broker: ${broker.files.length} files, ${internal(broker)} import declarations between them; sdk: ${sdk.files.length} files, ${internal(sdk)}`,
    );
    expect(broker.files.length).toBeGreaterThan(60);
    expect(internal(broker)).toBeGreaterThan(150);
    expect(sdk.files.length).toBeGreaterThan(20);
    expect(internal(sdk)).toBeGreaterThan(40);
    // Both forms of type-only import are recognised.
    expect(broker.edges.some((edge) => edge.typeOnly && edge.specifier.endsWith('options.js'))).toBe(true);
    expect(broker.edges.some((edge) => edge.from === 'index.ts' && edge.specifier === './storage/fs.js' && edge.typeOnly)).toBe(true);
  });

  it.each([
    ['broker', broker],
    ['sdk', sdk],
  ])('%s: no import cycle', (_, graph) => {
    const cycles = findCycles(graph).map((cycle) => cycle.join(' → '));
    expect(cycles, `import cycles:\n${cycles.join('\n')}`).toEqual([]);
  });

  it.each([
    ['broker', broker, BROKER_LEVELS],
    ['sdk', sdk, SDK_LEVELS],
  ])('%s: every source file belongs to a layer', (_, graph, levels) => {
    const place = placer(levels);
    expect(graph.files.filter((file) => place(file) === undefined), 'files in no layer: add them to the LEVELS of test/architecture.test.ts').toEqual([]);
  });

  it('broker: no import points to a higher layer or a sibling', () => {
    const { violations, unused } = layerViolations(broker, BROKER_LEVELS, ALLOWED_UPWARD);
    expect(violations, `imports against the layers:\n${violations.join('\n')}`).toEqual([]);
    expect(unused, 'exceptions in ALLOWED_UPWARD that no import needs any more: remove them').toEqual([]);
  });

  it('sdk: no import points to a higher layer or a sibling', () => {
    const { violations } = layerViolations(sdk, SDK_LEVELS, []);
    expect(violations, `imports against the layers:\n${violations.join('\n')}`).toEqual([]);
  });

  it('the broker takes only the protocol from the SDK; the SDK nothing from the broker', () => {
    const brokerToSdk = broker.edges.filter((edge) => edge.specifier.startsWith('@relaymq/sdk') && edge.specifier !== '@relaymq/sdk/protocol');
    expect(brokerToSdk.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
    const sdkToBroker = sdk.edges.filter((edge) => edge.specifier.startsWith('@relaymq/broker'));
    expect(sdkToBroker.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
    // The protocol is the SDK's bottom layer: it imports nothing of the SDK's outside protocol/.
    const protocolOut = sdk.edges.filter((edge) => edge.from.startsWith('protocol/') && edge.to !== undefined && !edge.to.startsWith('protocol/'));
    expect(protocolOut.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
  });

  it.each([
    ['broker', broker],
    ['sdk', sdk],
  ])('%s: shipped code imports nothing outside its src/ (test doubles live in test/)', (_, graph) => {
    const outside = graph.edges.filter((edge) => edge.to?.startsWith('../') === true);
    expect(outside.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
  });

  it('broker: the pure cores import no package but the SDK protocol (no I/O library, no clock)', () => {
    const offenders = broker.edges.filter((edge) => edge.from.startsWith('core/') && edge.to === undefined && edge.specifier !== '@relaymq/sdk/protocol');
    expect(offenders.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
  });

  it('broker: the engine and the runtime reach disks and sockets only through storage/ and net/', () => {
    const IO = /^(node:)?(fs|fs\/promises|net|tls|http|https|http2|dgram|child_process|worker_threads)$|^ws$/;
    const offenders = broker.edges.filter((edge) => /^(engine|runtime)\//.test(edge.from) && IO.test(edge.specifier));
    expect(offenders.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
  });

  it('broker: the command loads the RabbitMQ client, prom-client, jose, yaml and OpenTelemetry only when a start needs them', () => {
    const atStart = packagesLoadedBy(broker, 'cli.ts', false);
    expect(LOADED_ON_DEMAND.filter((p) => atStart.has(p)), 'packages every start would load: import them with import() where they are needed').toEqual([]);
    // Not vacuous: the walk reaches what every start needs, and each of these packages once dynamic imports are followed.
    expect(atStart.has('ws') && atStart.has('pino')).toBe(true);
    const whenNeeded = packagesLoadedBy(broker, 'cli.ts', true);
    expect(LOADED_ON_DEMAND.filter((p) => !whenNeeded.has(p))).toEqual([]);
  });

  it('sdk: only the Node entry point imports Node built-ins or ws (type imports included)', () => {
    const NODE_ENTRIES = new Set(['node.ts']);
    const offenders = sdk.edges.filter((edge) => !NODE_ENTRIES.has(edge.from) && isNodeOnly(edge.specifier));
    expect(offenders.map((edge) => `${edge.from}:${edge.line} ${edge.specifier}`)).toEqual([]);
    // The check is not vacuous: the Node entry does import ws.
    expect(sdk.edges.some((edge) => edge.from === 'node.ts' && isNodeOnly(edge.specifier))).toBe(true);
  });
});

describe('architecture: the checker itself', () => {
  const graph = (edges: Array<[string, string, boolean?]>): Graph => ({
    files: [...new Set(edges.flatMap(([from, to]) => [from, to]))].sort(),
    edges: edges.map(([from, to, typeOnly]) => ({ from, to, specifier: `./${to}`, typeOnly: typeOnly ?? false, line: 1 })),
  });

  it('finds a cycle and prints it as a path', () => {
    expect(findCycles(graph([['a.ts', 'b.ts'], ['b.ts', 'c.ts'], ['c.ts', 'a.ts'], ['c.ts', 'd.ts']]))).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
    expect(findCycles(graph([['a.ts', 'b.ts'], ['b.ts', 'a.ts', true]]))).toEqual([['a.ts', 'b.ts', 'a.ts']]); // a type import closes a cycle too
    expect(findCycles(graph([['a.ts', 'b.ts'], ['b.ts', 'c.ts'], ['a.ts', 'c.ts']]))).toEqual([]);
  });

  it('flags an upward, a sideways and a value import of an options-like layer; allows the rest', () => {
    const levels: Layer[][] = [[{ name: 'top', holds: ['top.ts'] }], [{ name: 'opts', holds: ['opts.ts'], typesFromBelow: true }], [{ name: 'l', holds: ['l/'] }, { name: 'r', holds: ['r/'] }], [{ name: 'seam', holds: ['l/seam.ts'] }]];
    const g = graph([
      ['top.ts', 'l/a.ts'], // down: fine
      ['l/a.ts', 'l/b.ts'], // same layer: fine
      ['l/a.ts', 'l/seam.ts'], // down to a file carved out of l/: fine
      ['l/a.ts', 'opts.ts', true], // types of the options layer: fine
      ['r/a.ts', 'opts.ts'], // values of the options layer: up
      ['l/b.ts', 'top.ts'], // up
      ['l/b.ts', 'r/a.ts'], // sideways
      ['l/seam.ts', 'l/b.ts'], // up (the seam is lower than the folder it sits in)
    ]);
    const { violations, unused } = layerViolations(g, levels, [
      { from: 'l/b.ts', to: 'top.ts', why: 'test' },
      { from: 'l/b.ts', to: 'gone.ts', why: 'stale' },
      { from: 'gone.ts', to: 'top.ts', why: 'its file was moved: ignored' },
    ]);
    expect(violations.map((v) => v.replace(/:1 .*: /, ' '))).toEqual(['r/a.ts up', 'l/b.ts sideways', 'l/seam.ts up']);
    expect(unused).toEqual(['l/b.ts -> gone.ts']);
  });
});
