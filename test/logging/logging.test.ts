import { Console } from 'node:console';
import { Writable } from 'node:stream';
import pino from 'pino';
import { harness, signed, type Harness } from '../helpers/callbacks';
import { SECRET } from '../helpers/callbacks';
import { sampleNotification } from '../../src/testing';
import { MemoryStore } from '../../src/stores/memory';
import type { CallbackStore } from '../../src/stores/types';

/** A stream that keeps everything written to it. */
function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

/** The JSON log lines of callback attempts (those with a route) in pino's output. */
function attemptLines(output: string): Record<string, unknown>[] {
  return output
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.route === 'string');
}

// Payer data that must never reach a log line, distinctive enough to search for.
const PAYER = {
  clientName: 'Zebulon Payerson',
  clientEmail: 'zebulon.payerson@example.org',
  clientPhone: '+15550009999',
  clientMemberId: 'member-771133',
  notes: 'gift for aunt Philippa',
};
const notification = (n: number, overrides: Record<string, string> = {}) =>
  sampleNotification({ ...PAYER, id: String(80000000000000000n + BigInt(n)), transactionId: String(700000 + n), referenceId: `order-${n}`, ...overrides });

/** Sends one of each kind of attempt; returns every X-Signature value sent. */
async function sendMix(h: Harness): Promise<string[]> {
  const signatures: string[] = [];
  const send = async (path: string, fields: Record<string, string>, options: Parameters<typeof signed>[1], status: number) => {
    const req = signed(fields, options);
    if (req.headers['X-Signature']) signatures.push(req.headers['X-Signature']);
    await h.http().post(path).set(req.headers).send(req.body).expect(status);
  };
  await send('/callbacks/caibo', notification(1), {}, 200); // handled
  await send('/callbacks/caibowh', notification(1), { type: 'json' }, 200); // duplicate, as JSON
  await send('/callbacks/caibo', notification(2), { secret: 'caibo_test_sk_wrong' }, 401); // signature.invalid
  await send('/callbacks/caibo', notification(3, { paymentRequestStatusId: 'paid' }), {}, 400); // payload.invalid
  await send('/callbacks/caibo', notification(4), {}, 500); // handler.failed (its message quotes the payer)
  return signatures;
}

const onStatus = async (event: { kind: string; referenceId?: string | null; client?: { email: string | null } }) => {
  if (event.kind === 'payment' && event.referenceId === 'order-4') throw new Error(`could not email ${event.client?.email}`);
};

function assertNoSecrets(output: string, signatures: string[]) {
  for (const value of Object.values(PAYER)) expect(output).not.toContain(value);
  expect(output).not.toContain(SECRET);
  expect(signatures.length).toBeGreaterThanOrEqual(4);
  for (const signature of signatures) {
    expect(output).not.toContain(signature);
    expect(output).not.toContain(signature.slice(0, 24));
  }
}

describe('one log line per callback attempt', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('with pino: route, outcome, status, error type, duration, dedupe key and secret index, and no payer data, secret or signature', async () => {
    const out = capture();
    const logger = pino({ level: 'info', base: undefined }, out.stream);
    h = await harness('express5', { secret: ['caibo_test_sk_old_0000', SECRET], logger, onStatus: onStatus as never });
    const signatures = await sendMix(h);
    const attempts = attemptLines(out.text());
    expect(attempts.map((l) => [l.route, l.outcome, l.status, l.errorType ?? null])).toEqual([
      ['/caibo', 'handled', 200, null],
      ['/caibowh', 'duplicate', 200, null],
      ['/caibo', 'rejected', 401, 'signature.invalid'],
      ['/caibo', 'rejected', 400, 'payload.invalid'],
      ['/caibo', 'failed', 500, 'handler.failed'],
    ]);
    // pino levels: info 30, warn 40, error 50.
    expect(attempts.map((l) => l.level)).toEqual([30, 30, 40, 40, 50]);
    for (const line of attempts) expect(typeof line.durationMs).toBe('number');
    expect(attempts[0]).toMatchObject({ key: '80000000000000001:700001:1:1', secretIndex: 1, msg: 'caibo callback' });
    expect(attempts[1]).toMatchObject({ key: '80000000000000001:700001:1:1', secretIndex: 1 });
    expect(attempts[2]).not.toHaveProperty('key');
    expect(attempts[4]).toMatchObject({ key: '80000000000000004:700004:1:1', err: { name: 'Error' } });
    assertNoSecrets(out.text(), signatures);
  });

  it('logs at error level a 200 whose completion the store failed to record (its key stays leased)', async () => {
    const out = capture();
    const logger = pino({ level: 'info', base: undefined }, out.stream);
    const memory = new MemoryStore();
    const store: CallbackStore = {
      claim: (key, opts) => memory.claim(key, opts),
      complete: () => Promise.reject(new Error('connection reset while writing')),
      release: (key, token) => memory.release(key, token),
    };
    h = await harness('express5', { logger, store: store as never, onStatus: onStatus as never });
    const req = signed(notification(1));
    await h.http().post('/callbacks/caibo').set(req.headers).send(req.body).expect(200);
    const attempts = attemptLines(out.text());
    expect(attempts).toEqual([
      expect.objectContaining({
        level: 50,
        outcome: 'handled',
        status: 200,
        errorType: 'store.unavailable',
        err: expect.objectContaining({ message: 'connection reset while writing' }),
        msg: 'caibo callback answered 200, but the store did not record its completion',
      }),
    ]);
    await memory.close();
  });

  it('with console: the same fields, and nothing private either', async () => {
    const out = capture();
    const console = new Console({ stdout: out.stream, stderr: out.stream, colorMode: false, inspectOptions: { breakLength: Infinity } });
    h = await harness('connect', { logger: console, onStatus: onStatus as never });
    const signatures = await sendMix(h);
    const lines = out.text().trim().split('\n');
    const attempts = lines.filter((l) => l.includes("route: '/caibo"));
    expect(attempts).toHaveLength(5);
    expect(attempts[0]).toMatch(/outcome: 'handled'.*status: 200.*durationMs: [\d.]+.*key: '80000000000000001:700001:1:1'.*secretIndex: 0.*caibo callback$/);
    expect(attempts[2]).toMatch(/outcome: 'rejected'.*status: 401.*errorType: 'signature.invalid'/);
    expect(attempts[4]).toMatch(/outcome: 'failed'.*status: 500.*errorType: 'handler.failed'/);
    assertNoSecrets(out.text(), signatures);
  });

  it('with a pino child logger: its bindings ride along on every attempt line', async () => {
    const out = capture();
    const logger = pino({ level: 'trace' }, out.stream).child({ component: 'payments' });
    h = await harness('express4', { logger, onStatus: onStatus as never });
    const signatures = await sendMix(h);
    const attempts = attemptLines(out.text());
    expect(attempts).toHaveLength(5);
    expect(attempts.every((l) => l.component === 'payments')).toBe(true);
    assertNoSecrets(out.text(), signatures);
  });
});

describe('a failure outside the pipeline (a logger that throws)', () => {
  let h: Harness;
  afterEach(async () => h?.close());

  it('keeps the answer already sent, logs the failure, and ends the request so close() does not wait for it', async () => {
    const lines: { level: string; msg: string | undefined }[] = [];
    let infoThrows = true;
    const logger = {
      info: (_obj: Record<string, unknown>, msg?: string) => {
        if (infoThrows) throw new Error('log sink down');
        lines.push({ level: 'info', msg });
      },
      warn: (_obj: Record<string, unknown>, msg?: string) => void lines.push({ level: 'warn', msg }),
      error: (_obj: Record<string, unknown>, msg?: string) => void lines.push({ level: 'error', msg }),
    };
    const handled: string[] = [];
    h = await harness('connect', { logger, onStatus: ((event: { key: string }) => void handled.push(event.key)) as never });
    const first = signed(sampleNotification({ id: '81000000000000001' }));
    // The 200 is written before the attempt is logged: it stands, and the handler ran once.
    await h.http().post('/callbacks/caibo').set(first.headers).send(first.body).expect(200, 'OK');
    expect(handled).toHaveLength(1);
    expect(lines).toContainEqual({ level: 'error', msg: 'caibo-callbacks: unexpected failure' });
    // The request no longer counts as in flight: close() returns well before its 5 s timeout.
    infoThrows = false;
    const second = signed(sampleNotification({ id: '81000000000000002' }));
    await h.http().post('/callbacks/caibo').set(second.headers).send(second.body).expect(200, 'OK');
    expect(handled).toHaveLength(2);
    const started = Date.now();
    await h.router.close({ timeoutMs: 5_000 });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('survives a logger whose error method throws too: the next request is served', async () => {
    const logger = {
      info: () => {
        throw new Error('log sink down');
      },
      warn: () => undefined,
      error: () => {
        throw new Error('log sink down');
      },
    };
    h = await harness('express5', { logger, onStatus: (() => undefined) as never });
    for (const id of ['81000000000000003', '81000000000000004']) {
      const req = signed(sampleNotification({ id }));
      await h.http().post('/callbacks/caibo').set(req.headers).send(req.body).expect(200, 'OK');
    }
    const duplicate = signed(sampleNotification({ id: '81000000000000003' }));
    await h.http().post('/callbacks/caibo').set(duplicate.headers).send(duplicate.body).expect(200, 'OK');
  });
});
