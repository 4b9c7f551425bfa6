import http, { type ServerResponse } from 'node:http';
import { caiboCallbacks, type CaiboEvent } from '../../src';
import { AnswerQueue } from '../../src/http/answers';
import { errorOutcome, type Outcome } from '../../src/pipeline';
import { CallbackError } from '../../src/errors';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { listen, stopServer } from '../helpers/callbacks';

const SECRET = 'caibo_test_sk_answers_0123456789';

const okOutcome = (): Outcome => ({ kind: 'handled', status: 200, body: 'OK', contentType: 'text/plain; charset=utf-8', headers: {} });

/** A listening server whose listener hands each response to the test. */
async function capturing(onRequest: (res: ServerResponse) => void) {
  const { server, url } = await listen((_req, res) => onRequest(res));
  return { port: Number(new URL(url).port), close: () => stopServer(server) };
}

/** A server that holds the responses of the first `count` requests, unanswered, for the test. */
async function holding(count: number) {
  const held: ServerResponse[] = [];
  let arrived!: () => void;
  const allArrived = new Promise<void>((resolve) => (arrived = resolve));
  const server = await capturing((res) => {
    if (held.push(res) === count) arrived();
  });
  return { ...server, held, allArrived };
}

/** A plain node:http request (no fetch: its timers would be faked too), answered or failed. */
function send(port: number, path = '/', body?: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders } | { error: string }>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
    });
    req.on('error', (error) => resolve({ error: (error as NodeJS.ErrnoException).code ?? error.message }));
    req.end(body);
  });
}

function signedPost(port: number, fields: Record<string, string>) {
  const body = formBody(fields);
  return send(port, '/caibo', body, { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': signPayload(body, SECRET) });
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('AnswerQueue', () => {
  it('writes the answers queued in one turn together, at the end of that turn, not when they are queued', async () => {
    const server = await holding(3);
    const waiting = server.held;
    try {
      const replies = [send(server.port), send(server.port), send(server.port)];
      await server.allArrived;
      const queue = new AnswerQueue(() => undefined);
      queue.push(waiting[0]!, okOutcome());
      queue.push(waiting[1]!, errorOutcome(new CallbackError('signature.invalid', 'bad')));
      queue.push(waiting[2]!, okOutcome());
      expect(waiting.map((res) => res.headersSent)).toEqual([false, false, false]);
      await nextTurn();
      expect(waiting.map((res) => res.writableEnded)).toEqual([true, true, true]);
      const answered = await Promise.all(replies);
      expect(answered.map((r) => ('status' in r ? [r.status, r.body, r.headers['cache-control']] : r))).toEqual([
        [200, 'OK', 'no-store'],
        [401, 'Unauthorized', 'no-store'],
        [200, 'OK', 'no-store'],
      ]);
    } finally {
      await server.close();
    }
  });

  it('settles drained() at once when nothing is queued, and only once the queued answers are written', async () => {
    const queue = new AnswerQueue(() => undefined);
    let settled = false;
    await queue.drained().then(() => (settled = true));
    expect(settled).toBe(true);

    const server = await holding(1);
    try {
      const reply = send(server.port);
      await server.allArrived;
      const res = server.held[0]!;
      queue.push(res, okOutcome());
      let drained = false;
      const waiting = queue.drained().then(() => {
        drained = true;
        return res.writableEnded;
      });
      await Promise.resolve();
      expect(drained).toBe(false);
      expect(await waiting).toBe(true);
      expect(await reply).toMatchObject({ status: 200, body: 'OK' });
    } finally {
      await server.close();
    }
  });

  it('closes the connection of an answer that cannot be written, reports it, and still writes the others', async () => {
    const server = await holding(2);
    const waiting = server.held;
    try {
      const replies = [send(server.port), send(server.port)];
      await server.allArrived;
      const failures: unknown[] = [];
      const queue = new AnswerQueue((error) => failures.push(error));
      const broken = new Error('writeHead failed');
      waiting[0]!.writeHead = () => {
        throw broken;
      };
      queue.push(waiting[0]!, okOutcome());
      queue.push(waiting[1]!, okOutcome());
      const [first, second] = await Promise.all(replies);
      expect(first).toEqual({ error: 'ECONNRESET' });
      expect(second).toMatchObject({ status: 200, body: 'OK' });
      expect(failures).toEqual([broken]);
    } finally {
      await server.close();
    }
  });
});

describe('the router answers once per turn', () => {
  afterEach(() => jest.useRealTimers());

  it('still answers when the app fakes the global timers (jest.useFakeTimers fakes setImmediate)', async () => {
    const handled: CaiboEvent[] = [];
    const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1'], onStatus: (event) => void handled.push(event) });
    const server = await capturing((res) => router(res.req, res));
    try {
      jest.useFakeTimers();
      const first = await signedPost(server.port, sampleNotification({ transactionId: '501' }));
      const again = await signedPost(server.port, sampleNotification({ transactionId: '501' }));
      expect(first).toMatchObject({ status: 200, body: 'OK' });
      expect(again).toMatchObject({ status: 200, body: 'OK' });
      expect(handled.map((e) => e.transactionId)).toEqual(['501']);
    } finally {
      jest.useRealTimers();
      await server.close();
      await router.close();
    }
  });

  it('close() resolves only after the answers of the requests it waited for are written', async () => {
    let answered: ServerResponse | undefined;
    let writtenWhenClosed: boolean | undefined;
    let closing: Promise<void> | undefined;
    const router = caiboCallbacks({
      secret: SECRET,
      allowIps: ['127.0.0.1'],
      // Closing from inside the handler: the request is in flight, its answer not made yet.
      onStatus: () => {
        closing = router.close({ timeoutMs: 5_000 }).then(() => {
          writtenWhenClosed = answered!.writableEnded;
        });
      },
    });
    const server = await capturing((res) => {
      answered = res;
      router(res.req, res);
    });
    try {
      expect(await signedPost(server.port, sampleNotification({ transactionId: '777' }))).toMatchObject({ status: 200, body: 'OK' });
      await closing;
      expect(writtenWhenClosed).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('closes the connection of an answer it cannot write and logs it (even past a logger that throws), then serves on', async () => {
    const lines: { fields: Record<string, unknown>; msg?: string }[] = [];
    let throwing = false;
    const logger = {
      info() {},
      warn() {},
      error(fields: Record<string, unknown>, msg?: string) {
        lines.push({ fields, msg });
        if (throwing) throw new Error('logger down');
      },
    };
    const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1'], logger, onStatus: () => undefined });
    let breakNext = 0;
    const server = await capturing((res) => {
      if (breakNext-- > 0) {
        res.writeHead = () => {
          throw new Error('cannot write');
        };
      }
      router(res.req, res);
    });
    try {
      breakNext = 2;
      expect(await signedPost(server.port, sampleNotification({ transactionId: '901' }))).toEqual({ error: 'ECONNRESET' });
      throwing = true;
      expect(await signedPost(server.port, sampleNotification({ transactionId: '902' }))).toEqual({ error: 'ECONNRESET' });
      expect(await signedPost(server.port, sampleNotification({ transactionId: '903' }))).toMatchObject({ status: 200, body: 'OK' });
      const written = lines.filter((l) => l.msg === 'caibo-callbacks: an answer could not be written; the connection was closed');
      expect(written.map((l) => l.fields.err)).toEqual([
        { name: 'Error', message: 'cannot write' },
        { name: 'Error', message: 'cannot write' },
      ]);
    } finally {
      await server.close();
      await router.close();
    }
  });
});
