/**
 * A binary min-heap of timed events: ordered by virtual time, then by
 * insertion order, so equal times replay deterministically.
 */
export interface Timed {
  readonly timeMs: number;
  /** Insertion counter; breaks ties. */
  readonly seq: number;
}

function before(a: Timed, b: Timed): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}

export class EventHeap<E extends Timed> {
  private readonly items: E[] = [];

  constructor(private readonly maxSize: number) {}

  get size(): number {
    return this.items.length;
  }

  push(item: E): void {
    const items = this.items;
    if (items.length >= this.maxSize) throw new Error(`event queue over its bound of ${this.maxSize} events`);
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as E;
      if (!before(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): E | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    const n = items.length;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(items[right] as E, items[left] as E)) child = right;
      const c = items[child] as E;
      if (!before(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }

  peek(): E | undefined {
    return this.items[0];
  }
}
