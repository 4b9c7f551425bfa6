import { randomBytes } from 'node:crypto';
import { caiboCallbacks, MemoryStore, type CaiboEvent } from '../../src';
import type { CallbackError } from '../../src/errors';
import { createCodec, PAYER_FIELDS } from '../../src/deferred/codec';
import { sampleNotification } from '../../src/testing';
import { postSigned, SECRET, serve, until } from '../inline/support';

const PAYER_VALUES = Object.values(sampleNotification()).filter((v) => ['Client Name', 'client@email.com', '1234567890', 'Payment notes'].includes(v));

/** A router in deferred mode whose worker stays idle until `start` is true (so raw records can be read). */
function deferredRouter(store: MemoryStore, options: Partial<Parameters<typeof caiboCallbacks>[0]>, onStatus: (e: CaiboEvent) => unknown) {
  return caiboCallbacks({
    secret: SECRET,
    store,
    mode: 'deferred',
    pollIntervalMs: 20,
    backoff: { initialMs: 10, maxMs: 20 },
    logger: { info() {}, warn() {}, error() {} },
    onStatus,
    ...options,
  });
}

describe('inbox payload encryption and payer-data minimisation', () => {
  it('stores no payer value in plaintext with encryption on, and still delivers them to the handler', async () => {
    expect(PAYER_VALUES).toHaveLength(4);
    const store = new MemoryStore();
    const lease = jest.spyOn(store, 'lease').mockResolvedValue([]);
    const handled: CaiboEvent[] = [];
    const router = deferredRouter(store, { encryption: { keys: [randomBytes(32)] } }, (e) => void handled.push(e));
    const server = await serve((req, res) => router(req, res));
    try {
      expect((await postSigned(server.url)).status).toBe(200);
      const [raw] = await store.list('pending', { limit: 10 });
      expect(raw!.payload.startsWith('enc:v1:')).toBe(true);
      for (const value of PAYER_VALUES) expect(raw!.payload).not.toContain(value);
      expect(raw!.payload).not.toContain('16772761082427695');
      lease.mockRestore();
      await until(() => handled.length === 1);
      expect(handled[0]!.kind === 'payment' && handled[0]!.client.email).toBe('client@email.com');
    } finally {
      await server.close();
      await router.close();
    }
  });

  it("payerData: 'drop' removes the payer fields before storing", async () => {
    const store = new MemoryStore();
    jest.spyOn(store, 'lease').mockResolvedValue([]);
    const router = deferredRouter(store, { payerData: 'drop' }, () => undefined);
    const server = await serve((req, res) => router(req, res));
    try {
      await postSigned(server.url);
      const [raw] = await store.list('pending', { limit: 10 });
      for (const value of PAYER_VALUES) expect(raw!.payload).not.toContain(value);
      const stored = JSON.parse(raw!.payload) as CaiboEvent;
      for (const field of PAYER_FIELDS) expect(stored.data[field]).toBeUndefined();
      expect(stored.data.clientId).toBe('16772748432912191');
      expect(stored.kind === 'payment' && stored.client).toEqual({ id: '16772748432912191', name: null, email: null, phone: null, memberId: null });
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('a tampered record is not delivered, is reported, and other events are unaffected', async () => {
    const store = new MemoryStore();
    const lease = jest.spyOn(store, 'lease').mockResolvedValue([]);
    const handled: string[] = [];
    const errors: CallbackError[] = [];
    const router = deferredRouter(store, { encryption: { keys: [randomBytes(32)] }, onError: (e) => void errors.push(e) }, (e) => void handled.push(e.key));
    const server = await serve((req, res) => router(req, res));
    try {
      await postSigned(server.url);
      await postSigned(server.url, { transactionId: '265112' });
      // Flip one byte of the first record's ciphertext, in the store itself.
      const inbox = (store as unknown as { inbox: Map<string, { payload: string }> }).inbox;
      const record = inbox.get('16772761082427695:265111:1:1')!;
      const sealed = Buffer.from(record.payload.split(':').pop()!, 'base64');
      sealed[5] = sealed[5]! ^ 0x01;
      record.payload = record.payload.replace(/[^:]+$/, sealed.toString('base64'));
      lease.mockRestore();
      await until(() => handled.length === 1 && errors.length === 1);
      expect(handled).toEqual(['16772761082427695:265112:1:1']);
      expect(errors[0]!.type).toBe('inbox.undecryptable');
      expect(errors[0]!.message).toMatch(/failed authentication/);
      const dead = await router.dead();
      expect(dead.map((d) => [d.key, d.event])).toEqual([['16772761082427695:265111:1:1', null]]);
    } finally {
      await server.close();
      await router.close();
    }
  });

  it('rotation: [A] → [B, A] still decrypts; [B] alone fails closed on old records, new ones work', () => {
    const a = randomBytes(32).toString('base64');
    const b = randomBytes(32).toString('hex');
    const event = { key: 'k1', kind: 'payment', data: {} } as unknown as CaiboEvent;
    const underA = createCodec({ keys: [a], dropPayerData: false }).encode(event);
    const rotated = createCodec({ keys: [b, a], dropPayerData: false });
    expect(rotated.decode('k1', underA)).toEqual(event);
    const underB = rotated.encode(event);
    expect(underB.split(':')[2]).not.toBe(underA.split(':')[2]);
    const onlyB = createCodec({ keys: [b], dropPayerData: false });
    expect(onlyB.decode('k1', underB)).toEqual(event);
    expect(() => onlyB.decode('k1', underA)).toThrow(/not in encryption.keys/);
    // The key is associated data: a payload moved to another record does not open.
    expect(() => onlyB.decode('k2', underB)).toThrow(/failed authentication/);
  });

  it('checks the keys', () => {
    expect(() => caiboCallbacks({ secret: SECRET, onStatus: () => undefined, encryption: { keys: ['short'] } })).toThrow(/32 bytes/);
    expect(() => caiboCallbacks({ secret: SECRET, onStatus: () => undefined, encryption: { keys: [] } })).toThrow(/non-empty/);
  });
});
