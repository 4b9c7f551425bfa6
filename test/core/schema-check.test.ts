import fc from 'fast-check';
import { z } from 'zod';
import { createFields } from '../../src/core/fields';
import { notificationSchema } from '../../src/core/notification';
import { compileSchemaCheck } from '../../src/core/schema-check';

const isNotification = compileSchemaCheck(notificationSchema);
const NAMES = Object.keys(notificationSchema.shape);

/** Values near every bound of the schema's patterns and lengths, and values of the wrong type. */
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.stringMatching(/^\d{0,34}$/),
  fc.stringMatching(/^-?\d{0,3}(\.\d{0,3})?$/),
  fc.stringMatching(/^[A-Za-z0-9 ]{0,14}$/),
  fc.constantFrom('', '1', '1.0', '-1', '1e3', '10,00', '١٢', '1\n', ' 1', 'USD', 'U$D', '\u{1F600}'),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  // Around the 10,000 bound of the text fields, with astral characters (one code point, two UTF-16 units).
  fc.tuple(fc.integer({ min: 9_990, max: 10_002 }), fc.boolean()).map(([n, astral]) => (astral ? `${'a'.repeat(n - 2)}\u{1F600}` : 'a'.repeat(n))),
  fc.constantFrom(1, null, true, ['1'], { id: '1' }),
);

/** Field maps over the schema's names, some left out, some unknown names added. */
const fieldMap = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...NAMES), value),
    fc.dictionary(fc.constantFrom('extra', 'status', 'constructor', 'toString', '__proto__'), fc.string({ maxLength: 5 })),
    fc.boolean(),
    fc.nat(9),
  )
  .map(([known, unknown, asFields, roll]) => {
    // Both shapes the router passes: parsed fields (no Object.prototype) and plain objects.
    const target: Record<string, unknown> = asFields ? createFields() : {};
    for (const [name, v] of Object.entries({ ...unknown, ...known })) {
      Object.defineProperty(target, name, { value: v, enumerable: true, writable: true, configurable: true });
    }
    // The required fields are usually there, so most maps get as far as the other checks.
    if (roll > 0) for (const name of ['id', 'paymentRequestStatusId']) if (!(name in known)) target[name] = '1';
    return target;
  });

describe('compileSchemaCheck (the notification schema, compiled by ajv)', () => {
  it('accepts exactly what zod accepts, and zod then returns the named fields unchanged', () => {
    fc.assert(
      fc.property(fieldMap, (fields) => {
        const parsed = notificationSchema.safeParse(fields);
        expect(isNotification(fields)).toBe(parsed.success);
        if (parsed.success) {
          const named = Object.fromEntries(NAMES.filter((n) => Object.hasOwn(fields, n)).map((n) => [n, fields[n]]));
          expect(parsed.data).toEqual(named);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('counts lengths in code points, as zod does: an emoji at the 10,000 bound is one character', () => {
    const atBound = { id: '1', paymentRequestStatusId: '1', notes: 'a'.repeat(10_000) };
    const astral = { ...atBound, notes: `${'a'.repeat(9_999)}\u{1F600}` };
    const over = { ...atBound, notes: `${'a'.repeat(10_000)}\u{1F600}` };
    expect([isNotification(atBound), notificationSchema.safeParse(atBound).success]).toEqual([true, true]);
    expect([isNotification(astral), notificationSchema.safeParse(astral).success]).toEqual([true, true]);
    expect([isNotification(over), notificationSchema.safeParse(over).success]).toEqual([false, false]);
  });

  it('needs the required fields and refuses a value of another type', () => {
    expect(isNotification({ paymentRequestStatusId: '1' })).toBe(false);
    expect(isNotification({ id: '1', paymentRequestStatusId: 1 })).toBe(false);
    expect(isNotification({ id: '1', paymentRequestStatusId: '1', grossAmount: '1e3' })).toBe(false);
    expect(isNotification({ id: '1', paymentRequestStatusId: '1', extra: { nested: true } })).toBe(true);
  });

  it('answers from the schema it was given, not from a fixed notification shape', () => {
    const check = compileSchemaCheck(z.object({ code: z.string().regex(/^[a-z]{2}$/) }));
    expect(check({ code: 'ab' })).toBe(true);
    expect(check({ code: 'abc' })).toBe(false);
    expect(check({})).toBe(false);
  });

  it('counts code points only for a string longer in UTF-16 units than the bound', () => {
    const check = compileSchemaCheck(z.object({ s: z.string().max(3) }));
    const schema = z.object({ s: z.string().max(3) });
    // Three emoji are six units but three code points: longer in units, within the bound.
    for (const s of ['', 'abc', '\u{1F600}\u{1F600}\u{1F600}', 'ab\u{1F600}', 'abcd', '\u{1F600}\u{1F600}\u{1F600}a', '\uD800\uD800\uD800\uD800']) {
      expect([s, check({ s })]).toEqual([s, schema.safeParse({ s }).success]);
    }
    expect(check({ s: '\u{1F600}\u{1F600}\u{1F600}' })).toBe(true);
    expect(check({ s: 'abcd' })).toBe(false);
  });
});
