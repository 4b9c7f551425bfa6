import { CallbackError } from '../../src/errors';
import fc from 'fast-check';
import { decodeUtf8, MAX_FIELDS, parseBody, parseForm, parseJson } from '../../src/core/fields';
import {
  eventKey,
  isFinalPaymentStatus,
  normaliseNotification,
  parseNotification,
  paymentStatusOf,
  transactionStatusOf,
  type ReceiptInfo,
} from '../../src/core/notification';
import { formBody, PUBLISHED_EXAMPLE_BODY, sampleNotification } from '../../src/testing';

const INFO: ReceiptInfo = { provider: 'caibo', verified: true, secretIndex: 0, receivedAt: new Date('2025-01-02T03:04:05Z') };

/** Every name a fields object inherits, through its whole prototype chain. */
function inheritedNames(fields: object): string[] {
  const names: string[] = [];
  for (let proto = Object.getPrototypeOf(fields) as object | null; proto !== null; proto = Object.getPrototypeOf(proto) as object | null) {
    names.push(...Reflect.ownKeys(proto).map(String));
  }
  return names;
}

/** Runs `fn`, expecting a CallbackError, and returns it. */
function refusal(fn: () => unknown): CallbackError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CallbackError);
    return error as CallbackError;
  }
  throw new Error('expected a CallbackError');
}

function eventFrom(fields: Record<string, string>) {
  const parsed = parseForm(formBody(fields));
  return normaliseNotification(parseNotification(parsed), parsed, INFO);
}

describe('parseForm', () => {
  it('reads the published example, which is not percent-encoded, exactly', () => {
    const fields = parseForm(PUBLISHED_EXAMPLE_BODY);
    expect(fields.id).toBe('16772761082427695');
    expect(fields.merchantId).toBe('16762420400394816');
    expect(fields.clientId).toBe('16772748432912191');
    expect(fields.notes).toBe('Payment notes');
    expect(fields.clientEmail).toBe('client@email.com');
    expect(fields.code).toBe('008');
    expect(fields.fee).toBe('0.5');
  });

  it('keeps decimal text such as "1.50" and codes with leading zeros', () => {
    const fields = parseForm('grossAmount=1.50&code=008&fee=0.10');
    expect(fields).toEqual({ grossAmount: '1.50', code: '008', fee: '0.10' });
  });

  it('refuses a repeated field, even with the same value', () => {
    const e = refusal(() => parseForm('id=1&id=2'));
    expect(e.type).toBe('payload.invalid');
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/"id" is repeated/);
    expect(refusal(() => parseForm('id=1&id=1')).type).toBe('payload.invalid');
  });

  it('treats __proto__ and constructor as plain data', () => {
    const fields = parseForm('__proto__=polluted&constructor=c&id=1');
    expect(Object.keys(fields)).toEqual(['__proto__', 'constructor', 'id']);
    expect(fields['__proto__']).toBe('polluted');
    expect(Object.getOwnPropertyDescriptor(fields, '__proto__')?.value).toBe('polluted');
    expect(inheritedNames(fields)).toEqual([]);
    expect(fields instanceof Object).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('inherits no name, so a field that was not sent never reads as sent', () => {
    const fields = parseForm('id=1');
    for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', '__defineGetter__']) {
      expect(fields[name]).toBeUndefined();
      expect(name in fields).toBe(false);
    }
    expect(() => {
      (Object.getPrototypeOf(fields) as Record<string, unknown>).injected = 'x';
    }).toThrow(TypeError);
    expect(parseForm('id=2')['injected']).toBeUndefined();
  });

  it(`refuses more than ${MAX_FIELDS} fields`, () => {
    const body = Array.from({ length: MAX_FIELDS + 1 }, (_, i) => `f${i}=1`).join('&');
    expect(refusal(() => parseForm(body)).type).toBe('payload.invalid');
    const atLimit = Array.from({ length: MAX_FIELDS }, (_, i) => `f${i}=1`).join('&');
    expect(Object.keys(parseForm(atLimit))).toHaveLength(MAX_FIELDS);
  });

  it('decodes like URLSearchParams: plus as space, escapes as UTF-8, malformed escapes kept, empty segments skipped', () => {
    expect(parseForm('+a+=+b+&c%20d=e%2&%=%&x=%zz%41&y=%C3%A9+%&&=z&n')).toEqual({
      ' a ': ' b ',
      'c d': 'e%2',
      '%': '%',
      x: '%zzA',
      y: 'é %',
      '': 'z',
      n: '',
    });
    expect(parseForm('')).toEqual({});
    // Escapes are decoded over the UTF-8 bytes: a malformed one beside them corrupts nothing.
    expect(parseForm('a=€%41%zz&b=%E2%82%AC&c=%E2%82')).toEqual({ a: '€A%zz', b: '€', c: '\uFFFD' });
    expect(parseForm('a=b=c')).toEqual({ a: 'b=c' });
  });

  it('agrees with URLSearchParams on any text made of the characters that matter', () => {
    const char = fc.constantFrom('a', 'b', '=', '&', '+', '%', '2', '0', '4', 'C', '3', 'A', '9', 'E', '8', 'é', '€', ' ', 'z');
    fc.assert(
      fc.property(fc.array(char, { maxLength: 40 }).map((chars) => chars.join('')), (text) => {
        // The standard decodes escapes over the body's UTF-8 bytes, so a raw 'é' and '%C3%A9' are
        // the same. Node's URLSearchParams gets that right on ASCII input only (it truncates wider
        // characters next to an escape), so the oracle is given the ASCII spelling.
        const params = new URLSearchParams(text.replace(/[^ -~]/g, (c) => (c.charCodeAt(0) > 0x7f ? encodeURIComponent(c) : c)));
        const names = [...params.keys()];
        if (new Set(names).size !== names.length) {
          expect(refusal(() => parseForm(text)).type).toBe('payload.invalid');
        } else {
          const fields = parseForm(text);
          expect(inheritedNames(fields)).toEqual([]);
          // Compared as maps: an object lists integer-like names first, whatever their order.
          expect({ ...fields }).toEqual(Object.fromEntries(params));
          expect(Object.keys(fields).length).toBe(names.length);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('names repeated after a run of the previous form\'s names are still refused, wherever the run ends', () => {
    parseForm('a=1&b=2&c=3');
    expect(parseForm('a=4&b=5&c=6')).toEqual({ a: '4', b: '5', c: '6' });
    expect(refusal(() => parseForm('a=1&b=2&c=3&c=4')).message).toMatch(/"c" is repeated/);
    parseForm('a=1&b=2&c=3');
    expect(refusal(() => parseForm('a=1&b=2&a=3')).message).toMatch(/"a" is repeated/);
    parseForm('a=1&b=2&c=3');
    expect(refusal(() => parseForm('a=1&a=2&b=3&c=4')).message).toMatch(/"a" is repeated/);
    parseForm('a=1&b=2&c=3');
    expect(refusal(() => parseForm('a%3D=1&b=2&a%3D=3')).message).toMatch(/"a=" is repeated/);
  });

  it(`refuses field ${MAX_FIELDS + 1} right after a form of ${MAX_FIELDS} fields with the same names`, () => {
    const names = Array.from({ length: MAX_FIELDS + 1 }, (_, i) => `g${i}=1`);
    expect(Object.keys(parseForm(names.slice(0, MAX_FIELDS).join('&')))).toHaveLength(MAX_FIELDS);
    expect(refusal(() => parseForm(names.join('&'))).message).toMatch(/More than 1000 fields/);
  });

  it('parses a form the same whatever form came before it (names reordered, dropped, repeated, renamed)', () => {
    const segment = fc.tuple(fc.constantFrom('id', 'fee', 'code', 'a+b', 'a%20b', 'a b', ''), fc.constantFrom('1', '', 'x%41'));
    const form = fc.array(segment, { maxLength: 8 });
    fc.assert(
      fc.property(form, fc.array(fc.tuple(fc.nat(8), fc.nat(8), fc.constantFrom('swap', 'copy', 'drop', 'rename')), { maxLength: 3 }), (first, edits) => {
        const second: [string, string][] = [...first];
        for (const [i, j, edit] of edits) {
          if (second.length === 0) break;
          const at = i % second.length;
          const to = j % second.length;
          if (edit === 'swap') [second[at], second[to]] = [second[to]!, second[at]!];
          else if (edit === 'copy') second.splice(to, 0, second[at]!);
          else if (edit === 'drop') second.splice(at, 1);
          else second[at] = [`${second[at]![0]}z`, second[at]![1]];
        }
        const text = (segments: [string, string][]) => segments.map(([n, v]) => `${n}=${v}`).join('&');
        const firstText = text(first);
        try {
          parseForm(firstText);
        } catch {
          // A first form with a repeat is refused; what it leaves behind must not matter either.
        }
        const params = new URLSearchParams(text(second));
        const names = [...params.keys()];
        if (new Set(names).size !== names.length) {
          expect(refusal(() => parseForm(text(second))).type).toBe('payload.invalid');
        } else {
          expect({ ...parseForm(text(second)) }).toEqual(Object.fromEntries(params));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parseJson', () => {
  it('keeps a bare 17-digit number exactly (Number() would round it)', () => {
    expect(String(Number('16772761082427695'))).toBe('16772761082427696');
    const fields = parseJson('{"id":16772761082427695,"merchantId":16762420400394816,"paymentRequestStatusId":1}');
    expect(fields.id).toBe('16772761082427695');
    expect(fields.merchantId).toBe('16762420400394816');
    expect(fields.paymentRequestStatusId).toBe('1');
  });

  it('keeps decimals as their source text, strings as sent, and drops nulls', () => {
    const fields = parseJson('{"grossAmount":1.50,"fee":"0.50","code":"008","notes":null,"flag":true}');
    expect(fields).toEqual({ grossAmount: '1.50', fee: '0.50', code: '008', flag: 'true' });
    expect('notes' in fields).toBe(false);
  });

  it('keeps nested values as JSON text, so the schema can refuse them', () => {
    const fields = parseJson('{"id":{"a":1},"list":[1,2]}');
    expect(JSON.parse(fields.id!)).toEqual({ a: '1' });
    expect(fields.list).toBe('["1","2"]');
    expect(refusal(() => parseNotification(fields)).type).toBe('payload.invalid');
  });

  it('refuses duplicate keys with different values', () => {
    const e = refusal(() => parseJson('{"id":"1","id":"2"}'));
    expect(e.type).toBe('payload.malformed');
    expect(e.status).toBe(400);
  });

  it('treats a __proto__ key as data and pollutes nothing', () => {
    const fields = parseJson('{"__proto__":{"polluted":"yes"},"constructor":"c","id":"1"}');
    expect(Object.keys(fields)).toEqual(['__proto__', 'constructor', 'id']);
    expect(JSON.parse(fields['__proto__']!)).toEqual({ polluted: 'yes' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses text that is not JSON as malformed, and non-objects as invalid', () => {
    expect(refusal(() => parseJson('{"id":')).type).toBe('payload.malformed');
    expect(refusal(() => parseJson('id=1')).type).toBe('payload.malformed');
    expect(refusal(() => parseJson('[1,2]')).type).toBe('payload.invalid');
    expect(refusal(() => parseJson('"text"')).type).toBe('payload.invalid');
    expect(refusal(() => parseJson('null')).type).toBe('payload.invalid');
  });
});

describe('decodeUtf8 / parseBody', () => {
  it('refuses invalid UTF-8 and drops a BOM', () => {
    expect(refusal(() => decodeUtf8(Buffer.from([0x69, 0x64, 0x3d, 0xff]))).type).toBe('payload.malformed');
    expect(decodeUtf8(Buffer.from('\ufeffid=1'))).toBe('id=1');
    expect(parseBody(Buffer.from('{"id":"1"}'), 'json')).toEqual({ id: '1' });
    expect(parseBody(Buffer.from('id=1'), 'form')).toEqual({ id: '1' });
  });

  it('keeps non-ASCII text', () => {
    expect(parseBody(Buffer.from(formBody({ clientName: 'Zoë Ñandú' })), 'form').clientName).toBe('Zoë Ñandú');
  });
});

describe('parseNotification (schema)', () => {
  it('accepts the published example and keeps every value a string', () => {
    const n = parseNotification(parseForm(PUBLISHED_EXAMPLE_BODY));
    expect(n.id).toBe('16772761082427695');
    expect(n.code).toBe('008');
    expect(n.grossAmount).toBe('10');
  });

  it('needs only id and paymentRequestStatusId; empty values count as absent', () => {
    expect(parseNotification(parseForm('id=1&paymentRequestStatusId=2')).transactionId).toBeUndefined();
    expect(parseNotification(parseForm('id=1&paymentRequestStatusId=2&transactionId=')).transactionId).toBeUndefined();
    const e = refusal(() => parseNotification(parseForm('paymentRequestStatusId=1')));
    expect(e.type).toBe('payload.invalid');
    expect(e.message).toMatch(/id is missing/);
    expect(refusal(() => parseNotification(parseForm('id=1'))).message).toMatch(/paymentRequestStatusId/);
  });

  it.each([
    ['id', '1677276108242769x'],
    ['id', '-1'],
    ['paymentRequestStatusId', 'paid'],
    ['transactionStatusId', '1.0'],
    ['grossAmount', '10,00'],
    ['grossAmount', '1e3'],
    ['unit', 'US D'],
    ['merchantId', '16762420400394816.0'],
  ])('refuses %s=%j as payload.invalid naming the field', (field, value) => {
    const e = refusal(() => parseNotification(parseForm(formBody(sampleNotification({ [field]: value })))));
    expect(e.type).toBe('payload.invalid');
    expect(e.expose).toBe(true);
    expect(e.message).toContain(field);
  });
});

describe('status decoding', () => {
  it('decodes the documented codes', () => {
    expect(['1', '2', '3'].map(paymentStatusOf)).toEqual(['paid', 'unpaid', 'cancelled']);
    expect(['0', '1', '2', '3'].map(transactionStatusOf)).toEqual(['waiting', 'approved', 'declined', 'pending']);
    expect(transactionStatusOf(undefined)).toBe('unknown');
  });

  it('accepts unknown codes as unknown and not final', () => {
    const event = eventFrom(sampleNotification({ paymentRequestStatusId: '4', transactionStatusId: '9' }));
    expect(event.paymentStatus).toBe('unknown');
    expect(event.paymentStatusId).toBe('4');
    expect(event.transactionStatus).toBe('unknown');
    expect(event.transactionStatusId).toBe('9');
    expect(event.final).toBe(false);
  });

  it('treats paid and cancelled as final, unpaid as not', () => {
    expect(isFinalPaymentStatus('paid')).toBe(true);
    expect(isFinalPaymentStatus('cancelled')).toBe(true);
    expect(isFinalPaymentStatus('unpaid')).toBe(false);
    expect(eventFrom(sampleNotification({ paymentRequestStatusId: '2' })).final).toBe(false);
  });
});

describe('normaliseNotification', () => {
  it('builds the event from the published example with exact strings', () => {
    const event = eventFrom(Object.fromEntries(new URLSearchParams(PUBLISHED_EXAMPLE_BODY)));
    expect(event).toMatchObject({
      kind: 'payment',
      provider: 'caibo',
      key: '16772761082427695:265111:1:1',
      verified: true,
      secretIndex: 0,
      paymentRequestId: '16772761082427695',
      transactionId: '265111',
      paymentStatus: 'paid',
      transactionStatus: 'approved',
      final: true,
      grossAmount: '10',
      fee: '0.5',
      netAmount: '9.5',
      currency: 'USD',
      referenceId: '12345',
      merchantId: '16762420400394816',
      notes: 'Payment notes',
      failure: { message: 'Stolen Card', code: '008' },
      client: { id: '16772748432912191', name: 'Client Name', email: 'client@email.com', phone: '1234567890', memberId: '12345' },
      receivedAt: '2025-01-02T03:04:05.000Z',
    });
    expect(event.data.code).toBe('008');
    expect(Object.isFrozen(event.data)).toBe(true);
  });

  it('has no failure when neither message nor code is sent', () => {
    expect(eventFrom(sampleNotification({ message: undefined, code: undefined })).failure).toBeNull();
  });
});

describe('eventKey', () => {
  it('is the payment state, whatever the route', () => {
    const fields = sampleNotification();
    const viaCaibo = normaliseNotification(parseNotification(parseForm(formBody(fields))), fields, INFO);
    const json = parseJson(JSON.stringify(fields));
    const viaWebhook = normaliseNotification(parseNotification(json), json, { ...INFO, provider: 'caibowh' });
    expect(viaWebhook.provider).toBe('caibowh');
    expect(viaWebhook.key).toBe(viaCaibo.key);
  });

  it('ignores fields outside the state, and changes with each state field', () => {
    const base = eventFrom(sampleNotification()).key;
    expect(eventFrom(sampleNotification({ notes: 'other', grossAmount: '11', clientName: 'X' })).key).toBe(base);
    for (const [field, value] of [
      ['id', '16772761082427696'],
      ['transactionId', '265112'],
      ['transactionStatusId', '2'],
      ['paymentRequestStatusId', '2'],
    ] as const) {
      expect(eventFrom(sampleNotification({ [field]: value })).key).not.toBe(base);
    }
  });

  it('formats absent parts as empty', () => {
    expect(eventKey({ id: '1', paymentRequestStatusId: '2' })).toBe('1:::2');
    expect(eventKey({ id: '1', transactionId: null, transactionStatusId: '0', paymentRequestStatusId: '2' })).toBe('1::0:2');
  });
});
