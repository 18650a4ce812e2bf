/**
 * The last events of a run, in a ring buffer: recording is an object write,
 * rendering to text happens only when a run fails (or is asked to print).
 */
export interface TraceEvent {
  timeMs: number;
  step: number;
  node: string;
  kind: string;
  /** A string, or an object rendered by the formatter given to `render` (no text is built while running). */
  detail: unknown;
}

export class TraceRing {
  private readonly events: TraceEvent[] = [];
  private next = 0;
  private total = 0;

  constructor(private readonly capacity: number) {}

  record(timeMs: number, step: number, node: string, kind: string, detail: unknown): void {
    const slot = this.events[this.next];
    if (slot === undefined) {
      this.events.push({ timeMs, step, node, kind, detail });
    } else {
      slot.timeMs = timeMs;
      slot.step = step;
      slot.node = node;
      slot.kind = kind;
      slot.detail = detail;
    }
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  /** Oldest first. */
  render(format: (detail: unknown) => string): string[] {
    const n = this.events.length;
    const start = n < this.capacity ? 0 : this.next;
    const lines: string[] = [];
    if (this.total > n) lines.push(`... ${this.total - n} earlier events not kept`);
    for (let i = 0; i < n; i++) {
      const e = this.events[(start + i) % n] as TraceEvent;
      const detail = typeof e.detail === 'string' ? e.detail : format(e.detail);
      lines.push(`${String(e.timeMs).padStart(7)}ms #${String(e.step).padStart(6)} ${e.node.padEnd(3)} ${e.kind.padEnd(9)} ${detail}`);
    }
    return lines;
  }
}
