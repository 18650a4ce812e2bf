/**
 * Everything a chaos run must undo (processes, proxies, mounts, ballast
 * files), undone in reverse order exactly once: at the end of the run, on
 * failure, and on SIGINT/SIGTERM. Each step is bounded so a stuck one cannot
 * keep the others from running.
 */
export class Cleanup {
  private readonly steps: Array<{ what: string; run: () => Promise<void> | void }> = [];
  private running: Promise<void> | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nchaos: ${signal}: cleaning up (brokers, proxies, mounts)\n`);
    void this.run().finally(() => process.exit(130));
  };

  constructor(private readonly stepTimeoutMs = 10_000) {}

  /** Installs the signal handlers (the CLI does; tests have their own teardown). */
  handleSignals(): void {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  /** Registers `run` to be undone at cleanup; returns a function that runs it now instead (once). */
  add(what: string, run: () => Promise<void> | void): () => Promise<void> {
    const step = { what, run };
    this.steps.push(step);
    return async () => {
      const index = this.steps.indexOf(step);
      if (index < 0) return;
      this.steps.splice(index, 1);
      await this.bounded(step);
    };
  }

  /** Runs every registered step, newest first; safe to call more than once. */
  run(): Promise<void> {
    this.running ??= (async () => {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
      while (this.steps.length > 0) await this.bounded(this.steps.pop() as { what: string; run: () => Promise<void> | void });
    })();
    return this.running;
  }

  private async bounded(step: { what: string; run: () => Promise<void> | void }): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(step.run),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${this.stepTimeoutMs} ms`)), this.stepTimeoutMs);
        }),
      ]);
    } catch (err) {
      process.stderr.write(`chaos cleanup: ${step.what} failed: ${String(err)}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
}
