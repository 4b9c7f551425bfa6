/**
 * The logger option: one line per request with route, outcome and status, and never the secret,
 * the signature or payer data.
 */
import { sampleNotification } from '../../src/testing';
import { capturingLogger, FRAMEWORKS, harness, NEXT_SECRET, post, SECRET, signed, type Harness } from '../helpers/callbacks';

const PAYER = { clientName: 'Ada Lovelace-Byron', clientEmail: 'ada.lovelace@example.org', clientPhone: '+44 7700 900123' };

describe.each(FRAMEWORKS)('logger under %s', (framework) => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it('writes one line per request with route, outcome and status, and no secrets, signatures or payer data', async () => {
    const { lines, logger } = capturingLogger();
    let fail = true;
    h = await harness(framework, {
      secret: [SECRET, NEXT_SECRET],
      logger,
      onStatus: (event) => {
        if (event.kind === 'payment' && event.transactionId === '3' && fail) {
          fail = false;
          throw new Error('order store unavailable');
        }
      },
    });
    const fields = sampleNotification(PAYER);
    const signatures: string[] = [];
    const send = async (overrides: Record<string, string>, options: Parameters<typeof post>[3] = {}) => {
      const payload = { ...fields, ...overrides };
      const sig = signed(payload, options).headers['X-Signature'];
      if (sig) signatures.push(sig);
      return (await post(h, '/callbacks/caibo', payload, options)).status;
    };

    const statuses = [
      await send({}), // handled
      await send({}), // duplicate
      await send({ transactionId: '2' }, { secret: 'caibo_test_sk_wrong' }), // 401
      await send({ transactionId: '2', id: 'x' }), // 400
      await send({ transactionId: '3' }), // 500
      await send({ transactionId: '3' }, { secret: NEXT_SECRET }), // redelivery, handled
    ];
    expect(statuses).toEqual([200, 200, 401, 400, 500, 200]);

    const perRequest = lines.filter((l) => l.obj.route !== undefined);
    expect(perRequest).toHaveLength(6);
    expect(perRequest.map((l) => [l.level, l.obj.route, l.obj.outcome, l.obj.status])).toEqual([
      ['info', '/caibo', 'handled', 200],
      ['info', '/caibo', 'duplicate', 200],
      ['warn', '/caibo', 'rejected', 401],
      ['warn', '/caibo', 'rejected', 400],
      ['error', '/caibo', 'failed', 500],
      ['info', '/caibo', 'handled', 200],
    ]);
    expect(perRequest[0]!.obj.key).toBe('16772761082427695:265111:1:1');
    expect(perRequest[2]!.obj.errorType).toBe('signature.invalid');
    expect(perRequest[3]!.obj.errorType).toBe('payload.invalid');
    expect(perRequest[4]!.obj.errorType).toBe('handler.failed');
    expect(perRequest[5]!.obj.secretIndex).toBe(1);

    const everything = JSON.stringify(lines);
    for (const secret of [SECRET, NEXT_SECRET, 'caibo_test_sk_wrong']) expect(everything).not.toContain(secret);
    expect(signatures.length).toBeGreaterThanOrEqual(6);
    for (const sig of signatures) {
      expect(everything).not.toContain(sig);
      expect(everything).not.toContain(sig.slice(0, 20));
    }
    for (const value of Object.values(PAYER)) expect(everything).not.toContain(value);
    expect(everything).not.toContain('ada.lovelace');
  });

  it('keeps payer data out of the log when the payload is refused for a payer field', async () => {
    const { lines, logger } = capturingLogger();
    h = await harness(framework, { logger });
    const res = await post(h, '/callbacks/caibo', sampleNotification({ ...PAYER, clientEmail: `${PAYER.clientEmail}${'x'.repeat(10_001)}` }));
    expect(res.status).toBe(400);
    expect(res.text).not.toContain(PAYER.clientEmail);
    const everything = JSON.stringify(lines);
    for (const value of Object.values(PAYER)) expect(everything).not.toContain(value);
    expect(lines.filter((l) => l.obj.route !== undefined)).toHaveLength(1);
  });
});
