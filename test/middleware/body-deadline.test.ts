import { once } from 'node:events';
import net from 'node:net';
import { caiboCallbacks } from '../../src';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { listen, stopServer } from '../helpers/callbacks';

const SECRET = 'caibo_test_sk_deadline_0123456789';
const BODY_TIMEOUT_MS = 7_777;
// Captured before any test fakes the timers: waiting in real time while they are faked.
const realSetTimeout = setTimeout;
const realDelay = (ms: number) => new Promise((resolve) => realSetTimeout(resolve, ms));

async function serve(router: ReturnType<typeof caiboCallbacks>) {
  const { server, url } = await listen((req, res) => router(req, res));
  return { port: Number(new URL(url).port), close: () => stopServer(server) };
}

/** Sends the headers and part of a signed body, then stalls; collects what comes back. */
function stalledPost(port: number) {
  const body = formBody(sampleNotification({ transactionId: '9001' }));
  const socket = net.connect(port, '127.0.0.1');
  let response = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (response += chunk));
  const closed = once(socket, 'close');
  socket.write(
    'POST /caibo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Signature: ${signPayload(body, SECRET)}\r\n\r\n${body.slice(0, 40)}`,
  );
  return { response: () => response, closed };
}

describe('the body deadline (bodyTimeoutMs)', () => {
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('answers a stalled body 408 at bodyTimeoutMs and not before, on the global timers an app may fake', async () => {
    const handled: string[] = [];
    const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1'], bodyTimeoutMs: BODY_TIMEOUT_MS, onStatus: (e) => void handled.push(e.key) });
    const server = await serve(router);
    jest.useFakeTimers();
    try {
      const client = stalledPost(server.port);
      // The deadline is a fake timer once the read's turn has ended (its hook is not faked).
      for (let i = 0; i < 200 && jest.getTimerCount() === 0; i++) await realDelay(5);
      expect(jest.getTimerCount()).toBe(1);
      jest.advanceTimersByTime(BODY_TIMEOUT_MS - 1);
      await realDelay(50);
      expect(client.response()).toBe('');
      jest.advanceTimersByTime(1);
      await client.closed;
      expect(client.response()).toMatch(/^HTTP\/1\.1 408 [^]*\r\n\r\nRequest Timeout$/);
      expect(handled).toEqual([]);
    } finally {
      jest.useRealTimers();
      await server.close();
      await router.close();
    }
  });

  it('sets no timer for a body that arrives with its headers', async () => {
    const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1'], bodyTimeoutMs: BODY_TIMEOUT_MS, onStatus: () => undefined });
    const server = await serve(router);
    const setTimeoutSpy = jest.spyOn(global, 'setTimeout');
    try {
      const body = formBody(sampleNotification({ transactionId: '9002' }));
      const res = await fetch(`http://127.0.0.1:${server.port}/caibo`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': signPayload(body, SECRET) },
        body,
      });
      expect(res.status).toBe(200);
      expect(setTimeoutSpy.mock.calls.filter(([, ms]) => ms === BODY_TIMEOUT_MS)).toEqual([]);
    } finally {
      await server.close();
      await router.close();
    }
  });
});
