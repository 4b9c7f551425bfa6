import fc from 'fast-check';
import { KeyTable } from '../../src/stores/key-table';

describe('KeyTable', () => {
  it('finds what it holds and nothing else, across removals, under random operations (model check)', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'ab', 'ba', 'abc', '', 'é', '€', 'x'.repeat(70), 'y'.repeat(70), '\u0000z');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), key, expiresAt: fc.integer({ min: 0, max: 100 }) }),
      fc.record({ kind: fc.constant('remove' as const), key }),
      fc.record({ kind: fc.constant('sweep' as const), now: fc.integer({ min: 0, max: 100 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80 }), (capacity, ops) => {
        const table = new KeyTable(capacity, 50);
        // The model: keys in write order with their expiry; the oldest goes when full.
        const model: { key: string; expiresAt: number }[] = [];
        for (const o of ops) {
          if (o.kind === 'insert') {
            const at = model.findIndex((m) => m.key === o.key);
            const held = table.find(o.key);
            expect(held !== -1).toBe(at !== -1);
            if (held !== -1) table.remove(held);
            if (at !== -1) model.splice(at, 1);
            table.insert(o.key, o.expiresAt);
            model.push({ key: o.key, expiresAt: o.expiresAt });
            // An insert into a full ring evicts: only ever the oldest written keys.
            const lost = model.map((m) => table.find(m.key) === -1);
            const kept = lost.indexOf(false);
            expect(lost.slice(kept).includes(true)).toBe(false);
            model.splice(0, kept);
          } else if (o.kind === 'remove') {
            const slot = table.find(o.key);
            if (slot !== -1) table.remove(slot);
            const at = model.findIndex((m) => m.key === o.key);
            if (at !== -1) model.splice(at, 1);
          } else {
            expect(table.removeExpired(o.now)).toBe(model.filter((m) => m.expiresAt <= o.now).length);
            for (let i = model.length - 1; i >= 0; i--) if (model[i]!.expiresAt <= o.now) model.splice(i, 1);
          }
        }
        for (const m of model) expect(table.expiresAt[table.find(m.key)]).toBe(m.expiresAt);
        expect(table.size).toBe(model.length);
        expect(table.size).toBeLessThanOrEqual(capacity);
        for (const k of ['zz', 'abcd', 'x'.repeat(71)]) expect(table.find(k)).toBe(-1);
      }),
      { numRuns: 3000 },
    );
  });

  it('evicts the oldest written key once full', () => {
    const table = new KeyTable(3, 64);
    for (const k of ['k1', 'k2', 'k3', 'k4']) table.insert(k, 1);
    expect(['k1', 'k2', 'k3', 'k4'].map((k) => table.find(k) !== -1)).toEqual([false, true, true, true]);
    expect(table.size).toBe(3);
  });

  it('keeps keys that are long or beyond latin1 apart by digest, and never confuses them with each other', () => {
    const table = new KeyTable(10, 45);
    const long1 = `${'9'.repeat(60)}:1`;
    const long2 = `${'9'.repeat(60)}:2`;
    table.insert(long1, 1);
    table.insert('paiement-réussi-€', 1);
    expect(table.find(long1)).not.toBe(-1);
    expect(table.find(long2)).toBe(-1);
    expect(table.find('paiement-réussi-€')).not.toBe(-1);
    expect(table.find('paiement-réussi-?')).toBe(-1);
  });

  it('stores values in place, and ones too long for their slot on the side, until the slot is freed', () => {
    const table = new KeyTable(2, 48, 16);
    const a = table.insert('a', 1);
    table.setValue(a, 'short €');
    const b = table.insert('b', 1);
    table.setValue(b, 'x'.repeat(40));
    expect(table.valueAt(a)).toBe('short €');
    expect(table.valueAt(b)).toBe('x'.repeat(40));
    table.setValue(b, 'fits');
    expect(table.valueAt(b)).toBe('fits');
    table.setValue(b, 'y'.repeat(40));
    table.remove(b);
    const c = table.insert('c', 1);
    table.setValue(c, 'z');
    expect(table.valueAt(c)).toBe('z');
  });

  it('gives back every value as it was given, ASCII or not, in place or on the side, after any rewrites', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 12 }))), {
          maxLength: 30,
        }),
        (writes) => {
          const table = new KeyTable(3, 48, 16);
          const slots = ['a', 'b', 'c'].map((key) => table.insert(key, 1));
          const model = ['', '', ''];
          for (const [which, value] of writes) {
            table.setValue(slots[which]!, value);
            model[which] = value;
            for (let i = 0; i < 3; i++) if (writes.some(([w]) => w === i)) expect(table.valueAt(slots[i]!)).toBe(model[i]);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
