import { fileURLToPath } from 'node:url';
import { Application, Logger, LogLevel, ReflectionKind, TSConfigReader, TypeDocReader, type DeclarationReflection, type ProjectReflection } from 'typedoc';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * The API reference (`npm run docs`, typedoc.json) as a reader of the docs
 * sees it: one module per import path of the packages, the client without the
 * emitter methods it inherits, no wire codec or storage internals, and no
 * warning from typedoc (a broken link, a missing export).
 */

/** Collects what typedoc reports instead of printing it. */
class CollectingLogger extends Logger {
  readonly messages: string[] = [];
  override log(message: string, level: LogLevel): void {
    super.log(message, level);
    if (level >= LogLevel.Warn) this.messages.push(`${LogLevel[level]}: ${message}`);
  }
}

let project: ProjectReflection;
let logger: CollectingLogger;

beforeAll(async () => {
  // typedoc.json's own settings, read the way `npm run docs` reads them; nothing is written.
  const app = await Application.bootstrapWithPlugins({ options: fileURLToPath(new URL('../typedoc.json', import.meta.url)) }, [new TypeDocReader(), new TSConfigReader()]);
  logger = new CollectingLogger();
  app.logger = logger;
  const converted = await app.convert();
  if (converted === undefined) throw new Error(`typedoc could not convert the project:\n${logger.messages.join('\n')}`);
  app.validate(converted);
  project = converted;
}, 240_000); // a full type-check of both packages; slow on a loaded machine

/** Every reflection of the project, depth first. */
function all(reflection: ProjectReflection | DeclarationReflection): DeclarationReflection[] {
  return (reflection.children ?? []).flatMap((child) => [child, ...all(child)]);
}

describe('the API reference (typedoc)', () => {
  it('builds without a warning or an error', () => {
    expect(logger.messages).toEqual([]);
    expect(logger.warningCount + logger.errorCount).toBe(0);
  });

  it('has one module per import path of the packages, named as imported', () => {
    expect((project.children ?? []).map((m) => m.name).sort()).toEqual(['@relaymq/broker', '@relaymq/sdk', '@relaymq/sdk/core']);
    for (const module of project.children ?? []) expect(module.kind).toBe(ReflectionKind.Module);
  });

  it('documents the client without the emitter methods it inherits', () => {
    const sdk = project.getChildByName('@relaymq/sdk') as DeclarationReflection;
    const client = sdk.getChildByName('RelayClient') as DeclarationReflection | undefined;
    expect(client?.kind).toBe(ReflectionKind.Class);
    const members = (client?.children ?? []).map((m) => m.name);
    expect(members).toEqual(expect.arrayContaining(['start', 'publish', 'subscribe', 'close', 'stats']));
    expect((client?.children ?? []).filter((m) => m.inheritedFrom !== undefined).map((m) => m.name)).toEqual([]);
    for (const emitterMethod of ['emit', 'listeners', 'listenerCount', 'eventNames', 'addListener', 'removeListener', 'removeAllListeners']) {
      expect(members, emitterMethod).not.toContain(emitterMethod);
    }
  });

  it('leaves the wire codec, the storage seam and the engine out', () => {
    const names = new Set(all(project).map((r) => r.name));
    for (const internal of ['encodeFrame', 'decodeBrokerFrame', 'decodeClientFrame', 'encodePayload', 'decodePayload', 'scanMsgpack', 'validateClientFrame', 'FileSystem', 'FileHandle', 'LogEngine', 'StoredMessage', 'resolveClientOptions']) {
      expect(names.has(internal), internal).toBe(false);
    }
    // And nothing is named after a source path (typedoc's fallback for a module without a name).
    expect([...names].filter((n) => /\bsrc\b|\.ts$/.test(n))).toEqual([]);
  });
});
