import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { targetAssignment } from './group-assignor.js';

const parts = (n: number): string[] => Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, '0')}`);
const countsOf = (target: Map<string, string | undefined>, members: readonly string[]): number[] =>
  members.map((m) => [...target.values()].filter((owner) => owner === m).length);

describe('targetAssignment', () => {
  it('spreads 12 partitions over 3 members 4 each, then over 6 members 2 each, moving only what must move', () => {
    const three = targetAssignment(parts(12), ['a', 'b', 'c'], new Map());
    expect(countsOf(three, ['a', 'b', 'c'])).toEqual([4, 4, 4]);
    const six = targetAssignment(parts(12), ['a', 'b', 'c', 'd', 'e', 'f'], three);
    expect(countsOf(six, ['a', 'b', 'c', 'd', 'e', 'f'])).toEqual([2, 2, 2, 2, 2, 2]);
    // Each of a, b, c kept 2 of its 4: exactly 6 partitions moved, all to the newcomers.
    const moved = parts(12).filter((p) => six.get(p) !== three.get(p));
    expect(moved).toHaveLength(6);
    for (const p of moved) expect(['d', 'e', 'f']).toContain(six.get(p));
  });

  it('gives a departed member’s partitions to the others and moves nothing else', () => {
    const before = targetAssignment(parts(12), ['a', 'b', 'c', 'd'], new Map());
    const after = targetAssignment(parts(12), ['a', 'b', 'c'], before);
    for (const p of parts(12)) if (before.get(p) !== 'd') expect(after.get(p)).toBe(before.get(p));
    expect(countsOf(after, ['a', 'b', 'c'])).toEqual([4, 4, 4]);
  });

  it('leaves every partition unowned with no members', () => {
    expect([...targetAssignment(parts(3), [], new Map()).values()]).toEqual([undefined, undefined, undefined]);
  });

  const scenario = fc.record({
    partitions: fc.integer({ min: 0, max: 40 }),
    members: fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'), { maxLength: 8 }),
    // The current owner of each partition: any member, a departed one, or none.
    owners: fc.array(fc.option(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'gone'), { nil: undefined }), { maxLength: 40 }),
  });

  it('property: every partition has exactly one owner, a live member (or none when there are no members)', () => {
    fc.assert(
      fc.property(scenario, ({ partitions, members, owners }) => {
        const ps = parts(partitions);
        const target = targetAssignment(ps, members, new Map(ps.map((p, i) => [p, owners[i]])));
        expect([...target.keys()].sort()).toEqual(ps);
        for (const owner of target.values()) {
          if (members.length === 0) expect(owner).toBeUndefined();
          else expect(members).toContain(owner);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('property: balanced within one', () => {
    fc.assert(
      fc.property(scenario, ({ partitions, members, owners }) => {
        if (members.length === 0) return;
        const ps = parts(partitions);
        const counts = countsOf(targetAssignment(ps, members, new Map(ps.map((p, i) => [p, owners[i]]))), members);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 500 },
    );
  });

  it('property: sticky — a live member keeps min(what it owned, its fair share), and an already balanced assignment is a fixed point', () => {
    fc.assert(
      fc.property(scenario, ({ partitions, members, owners }) => {
        if (members.length === 0) return;
        const ps = parts(partitions);
        const current = new Map(ps.map((p, i) => [p, owners[i]]));
        const target = targetAssignment(ps, members, current);
        const floor = Math.floor(ps.length / members.length);
        for (const m of members) {
          const owned = ps.filter((p) => current.get(p) === m);
          const kept = owned.filter((p) => target.get(p) === m).length;
          expect(kept).toBeGreaterThanOrEqual(Math.min(owned.length, floor));
        }
        // Stable: assigning again from the result changes nothing.
        expect(targetAssignment(ps, members, target)).toEqual(target);
      }),
      { numRuns: 500 },
    );
  });

  it('property: deterministic whatever order members and partitions come in', () => {
    fc.assert(
      fc.property(scenario, fc.integer(), ({ partitions, members, owners }, seed) => {
        const ps = parts(partitions);
        const current = new Map(ps.map((p, i) => [p, owners[i]]));
        const shuffled = [...members].sort(() => (seed % 2 === 0 ? 1 : -1));
        expect(targetAssignment([...ps].reverse(), shuffled, current)).toEqual(targetAssignment(ps, members, current));
      }),
      { numRuns: 200 },
    );
  });
});
