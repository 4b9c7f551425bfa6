/**
 * Redaction over a full run: good, duplicate, refused and failing requests of every kind. All log
 * output, every error message the hooks receive and every refusal body are captured and searched
 * for the secrets, the signatures sent, the payer's name, e-mail and phone, and card numbers.
 */
import type { CallbackStore } from '../../src/stores/types';
import { MemoryStore } from '../../src/stores/memory';
import { luhn } from '../../src/security/redact';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { OLD_SECRET, rawExchange, SECRET, send, startServer, type SecurityServer } from './support';

const FORM = 'application/x-www-form-urlencoded';
const PAYER = {
  clientName: 'Ada Quintessa Lovelace',
  clientEmail: 'ada.q@payer-mail.example',
  clientPhone: '+44 20 7946 0958',
};
const CARD = '4111 1111 1111 1111';
const CARD_2 = '5500-0000-0000-0004';
const MERCHANT = '16762420400394816';
/** Ids this run sends: they are logged (as the dedupe key) and are not card numbers. */
const IDS = ['16772761082427001', '16772761082427002', '16772761082427003', '16772761082427004', '16772761082427005', '16772761082427006'];

const fields = (id: string, extra: Record<string, string> = {}) =>
  sampleNotification({ id, ...PAYER, notes: `paid with card ${CARD}`, message: `Stolen Card ${CARD_2}`, ...extra });

describe('nothing sensitive reaches logs, hook messages or refusal bodies', () => {
  let s: SecurityServer;
  const signatures: string[] = [];
  const replies: { status: number; text: string }[] = [];
  let releaseSlow: () => void = () => undefined;

  /** A store that fails for one id, with a driver-style message quoting the secret and the payer. */
  class LeakyFailingStore implements CallbackStore {
    private readonly inner = new MemoryStore();
    claim(key: string, opts: { leaseMs: number }) {
      if (key.startsWith(IDS[3]!)) {
        return Promise.reject(new Error(`redis://:${SECRET}@cache:6379 refused AUTH while storing ${PAYER.clientEmail} / ${CARD}`));
      }
      return this.inner.claim(key, opts);
    }
    complete(key: string, token: string, opts: { retentionMs: number }) {
      return this.inner.complete(key, token, opts);
    }
    release(key: string, token: string) {
      return this.inner.release(key, token);
    }
  }

  beforeAll(async () => {
    s = await startServer({
      options: {
        secret: [SECRET, OLD_SECRET],
        allowIps: ['127.0.0.1'],
        providers: { caibowh: { allowIps: ['203.0.113.1'] } },
        merchantId: MERCHANT,
        limit: 2048,
        bodyTimeoutMs: 200,
        rateLimit: { limit: 40 },
        store: new LeakyFailingStore(),
        onStatus: async (event) => {
          if (event.kind !== 'payment') return;
          if (event.paymentRequestId === IDS[2]) {
            // A merchant's handler that fails with everything in its message.
            throw new Error(`could not book ${event.client.name} <${event.client.email}> ${event.client.phone} card ${CARD} key ${SECRET}`);
          }
          if (event.paymentRequestId === IDS[4]) await new Promise<void>((resolve) => (releaseSlow = resolve));
        },
      },
    });
  });
  afterAll(async () => {
    await s.close();
  });

  async function post(path: string, body: string | Buffer, signature: string | undefined, type = FORM) {
    const headers: Record<string, string> = { 'Content-Type': type };
    if (signature !== undefined) {
      headers['X-Signature'] = signature;
      signatures.push(signature);
    }
    const reply = await send(s, { path, headers, body });
    replies.push({ status: reply.status, text: reply.text });
    return reply.status;
  }
  const sign = (body: string | Buffer, secret = SECRET) => signPayload(body, secret);

  it('runs every kind of request', async () => {
    const good = formBody(fields(IDS[0]!));
    expect(await post('/callbacks/caibo', good, sign(good))).toBe(200);
    expect(await post('/callbacks/caibo', good, sign(good))).toBe(200); // duplicate
    const json = JSON.stringify(fields(IDS[1]!));
    expect(await post('/callbacks/caibo-gateway', json, sign(json, OLD_SECRET), 'application/json')).toBe(200);
    expect(await post('/callbacks/caibo', good, sign(`${good}x`))).toBe(401); // wrong signature
    expect(await post('/callbacks/caibo', good, undefined)).toBe(401); // missing
    expect(await post('/callbacks/caibowh', good, sign(good))).toBe(403); // address
    const otherMerchant = formBody(fields(IDS[5]!, { merchantId: '16762420400394817' }));
    expect(await post('/callbacks/caibo', otherMerchant, sign(otherMerchant))).toBe(403);
    const invalid = formBody(fields('not-an-id'));
    expect(await post('/callbacks/caibo', invalid, sign(invalid))).toBe(400);
    const wrongType = JSON.stringify({ ...fields(IDS[5]!), clientName: [PAYER.clientName], id: { nested: PAYER.clientEmail } });
    expect(await post('/callbacks/caibo', wrongType, sign(wrongType), 'application/json')).toBe(400);
    const malformed = `{"clientEmail": ${PAYER.clientEmail}, "notes": "${CARD}"}`;
    expect(await post('/callbacks/caibo', malformed, sign(malformed), 'application/json')).toBe(400);
    const repeated = `${formBody(fields(IDS[5]!))}&clientEmail=${encodeURIComponent(PAYER.clientEmail)}`;
    expect(await post('/callbacks/caibo', repeated, sign(repeated))).toBe(400);
    const notUtf8 = Buffer.concat([Buffer.from(formBody(fields(IDS[5]!))), Buffer.from([0xff])]);
    expect(await post('/callbacks/caibo', notUtf8, sign(notUtf8))).toBe(400);
    const tooBig = formBody(fields(IDS[5]!, { notes: `${CARD} `.repeat(200) }));
    expect(await post('/callbacks/caibo', tooBig, sign(tooBig))).toBe(413);
    expect(await post('/callbacks/caibo', good, sign(good), 'text/plain')).toBe(415);
    const failing = formBody(fields(IDS[2]!));
    expect(await post('/callbacks/caibo', failing, sign(failing))).toBe(500); // handler threw
    const storeDown = formBody(fields(IDS[3]!));
    expect(await post('/callbacks/caibo', storeDown, sign(storeDown))).toBe(503);
    // In flight: a second copy while the first is still in the handler.
    const slow = formBody(fields(IDS[4]!));
    const first = post('/callbacks/caibo', slow, sign(slow));
    await new Promise((r) => setTimeout(r, 50));
    expect(await post('/callbacks/caibo', slow, sign(slow))).toBe(409);
    releaseSlow();
    expect(await first).toBe(200);
    // A stalled body.
    const stalled = await rawExchange(s.port, [
      `POST /callbacks/caibo HTTP/1.1\r\nHost: x\r\nContent-Type: ${FORM}\r\nContent-Length: 900\r\nX-Signature: ${sign(good)}\r\n\r\n${good.slice(0, 100)}`,
    ]);
    expect(stalled.status).toBe(408);
    // Until the rate limit answers.
    let status = 0;
    for (let i = 0; i < 40 && status !== 429; i++) status = await post('/callbacks/caibo', good, sign(good));
    expect(status).toBe(429);

    const kinds = new Set([...s.rejected, ...s.errors].map((r) => r.error.type));
    expect([...kinds].sort()).toEqual(
      [
        'signature.invalid',
        'signature.missing',
        'ip.forbidden',
        'merchant.mismatch',
        'payload.invalid',
        'payload.malformed',
        'entity.too.large',
        'content_type.unsupported',
        'handler.failed',
        'store.unavailable',
        'event.in_flight',
        'request.timeout',
        'rate.limited',
      ].sort(),
    );
    expect(s.logs.some((l) => l.level === 'error')).toBe(true);
  });

  it('and none of it leaks', () => {
    const logText = s.logs.map((l) => `${l.level} ${l.msg ?? ''} ${JSON.stringify(l.obj)}`).join('\n');
    const hookText = [...s.rejected, ...s.errors]
      .flatMap(({ error }) => {
        const own = [error.message, error.publicMessage];
        // Causes from parsers and raw-body are library text; the handler's and the store's own errors are the merchant's.
        const cause = error.cause instanceof Error && error.status < 500 ? [error.cause.message] : [];
        return [...own, ...cause];
      })
      .join('\n');
    const bodies = replies.map((r) => r.text).join('\n');
    expect(logText.length).toBeGreaterThan(1000);

    const forbidden = [
      SECRET,
      OLD_SECRET,
      ...signatures.filter((sig) => sig.length > 20),
      ...signatures.filter((sig) => sig.length > 20).map((sig) => sig.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')),
      PAYER.clientName,
      PAYER.clientEmail,
      PAYER.clientPhone,
      PAYER.clientPhone.replace(/\D/g, ''),
      encodeURIComponent(PAYER.clientEmail),
      CARD,
      CARD.replace(/\D/g, ''),
      CARD_2,
      CARD_2.replace(/\D/g, ''),
    ];
    for (const [where, text] of [
      ['logs', logText],
      ['hook messages', hookText],
      ['response bodies', bodies],
    ] as const) {
      for (const value of forbidden) {
        expect({ where, leaked: value, found: text.includes(value) }).toEqual({ where, leaked: value, found: false });
      }
      // No card-like run at all: 13-19 digits (optionally grouped) passing Luhn, other than the ids we sent.
      const runs = [...text.matchAll(/\d(?:[ -]?\d){12,18}/g)].map((m) => m[0].replace(/[ -]/g, ''));
      const cardLike = runs.filter((digits) => luhn(digits) && !IDS.includes(digits) && digits !== MERCHANT);
      expect({ where, cardLike }).toEqual({ where, cardLike: [] });
    }
    // The handler's own failure is still visible in the log, with its sensitive parts redacted.
    const failed = s.logs.find((l) => l.obj.errorType === 'handler.failed')!;
    expect(JSON.stringify(failed.obj.err)).toMatch(/could not book \[redacted\]/);
  });
});
