/**
 * readBody on its two paths: a body already buffered whole is taken with one read(), anything
 * else goes through raw-body (limits, lying lengths, encodings). Then, over a real socket,
 * pipelined and keep-alive requests whose bodies come with their headers.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { caiboCallbacks } from '../../src';
import { CallbackError } from '../../src/errors';
import { readBody, type MaybeParsedRequest } from '../../src/http/read-body';
import { formBody, sampleNotification, signPayload } from '../../src/testing';
import { listen, stopServer } from '../helpers/callbacks';

/** A request stream as node:http leaves it: paused, headers set, `chunks` already pushed. */
function request(chunks: string[], headers: Record<string, string> = {}, ended = false): MaybeParsedRequest {
  const req = new Readable({ read() {} }) as unknown as MaybeParsedRequest;
  Object.assign(req, { headers, method: 'POST', url: '/caibo' });
  for (const chunk of chunks) req.push(Buffer.from(chunk));
  if (ended) req.push(null);
  return req;
}

function isPromise(value: unknown): value is Promise<Buffer> {
  return value instanceof Promise;
}

async function failure(value: Buffer | Promise<Buffer>): Promise<CallbackError> {
  if (!isPromise(value)) throw new Error('expected a promise');
  const error: unknown = await value.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof CallbackError)) throw new Error(`expected a CallbackError, got ${String(error)}`);
  return error;
}

describe('readBody: a body already buffered whole', () => {
  it('is returned at once, not as a promise, with no listener left on the request', () => {
    const req = request(['id=1&payment', 'RequestStatusId=1'], { 'content-length': '29' });
    const body = readBody(req, 1024, 5_000);
    expect(Buffer.isBuffer(body)).toBe(true);
    expect((body as Buffer).toString()).toBe('id=1&paymentRequestStatusId=1');
    expect(req.readableLength).toBe(0);
    for (const event of ['data', 'end', 'error', 'close', 'aborted']) expect(req.listenerCount(event)).toBe(0);
  });

  it('is taken once the stream has ended too, and the stream still ends', async () => {
    const req = request(['abc'], { 'content-length': '3' }, true);
    const ended = once(req, 'end');
    const body = readBody(req, 1024);
    expect(Buffer.isBuffer(body) && body.toString()).toBe('abc');
    req.resume();
    await ended;
  });

  it('is taken at exactly the limit', () => {
    const req = request(['x'.repeat(64)], { 'content-length': '64' });
    expect(Buffer.isBuffer(readBody(req, 64))).toBe(true);
  });
});

describe('readBody: everything else goes through raw-body', () => {
  it('a body still coming (fewer bytes buffered than announced) is awaited', async () => {
    const req = request(['id=1&'], { 'content-length': '29' });
    const body = readBody(req, 1024, 5_000);
    expect(isPromise(body)).toBe(true);
    req.push(Buffer.from('paymentRequestStatusId=1'));
    req.push(null);
    expect((await body).toString()).toBe('id=1&paymentRequestStatusId=1');
  });

  it('a body over the limit is refused 413 even when it is all there', async () => {
    const req = request(['x'.repeat(65)], { 'content-length': '65' });
    const error = await failure(readBody(req, 64));
    expect([error.type, error.status]).toEqual(['entity.too.large', 413]);
  });

  it('more bytes buffered than Content-Length announces is not taken as the body: raw-body reports the mismatch', async () => {
    const req = request(['abcd'], { 'content-length': '3' }, true);
    const error = await failure(readBody(req, 1024));
    expect([error.type, error.status]).toEqual(['request.size.invalid', 400]);
  });

  it('a chunked body (no Content-Length) is read to its end', async () => {
    const req = request(['ab', 'cd']);
    const body = readBody(req, 1024);
    expect(isPromise(body)).toBe(true);
    req.push(null);
    expect((await body).toString()).toBe('abcd');
  });

  it('a stream with an encoding set (a parser ran before us) is refused, never read as text', async () => {
    const req = request(['abc'], { 'content-length': '3' });
    req.setEncoding('utf8');
    const error = await failure(readBody(req, 1024));
    expect(error.type).toBe('body.already_parsed');
  });

  it('a stream already flowing to another listener is not read behind its back', async () => {
    const req = request([], { 'content-length': '3' });
    const seen: Buffer[] = [];
    req.on('data', (chunk: Buffer) => seen.push(chunk));
    req.push(Buffer.from('abc'));
    const body = readBody(req, 1024);
    expect(isPromise(body)).toBe(true);
    req.push(null);
    // raw-body joins the flow from where it is: what the other listener already took is not replayed.
    await expect(body).resolves.toBeInstanceOf(Buffer);
    expect(Buffer.concat(seen).toString()).toBe('abc');
  });
});

describe('bodies that arrive with their headers, over a real socket', () => {
  const SECRET = 'caibo_test_sk_read_body_0123456789';

  function signedRequest(id: string): string {
    const body = formBody(sampleNotification({ id, transactionId: `${id}1` }));
    return (
      'POST /caibo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Signature: ${signPayload(body, SECRET)}\r\n\r\n${body}`
    );
  }

  it('three pipelined requests in one packet, then one more on the same connection: each answered 200 and handled once', async () => {
    const handled: string[] = [];
    const router = caiboCallbacks({ secret: SECRET, allowIps: ['127.0.0.1'], onStatus: (e) => void handled.push(e.key.split(':')[0]!) });
    const { server, url } = await listen((req, res) => router(req, res));
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
    let response = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (response += chunk));
    const answers = async (n: number) => {
      for (let i = 0; i < 400 && (response.match(/\r\n\r\nOK/g) ?? []).length < n; i++) await new Promise((r) => setTimeout(r, 5));
      return response.match(/HTTP\/1\.1 \d{3}/g) ?? [];
    };
    try {
      await once(socket, 'connect');
      socket.write(signedRequest('71000000000000001') + signedRequest('71000000000000002') + signedRequest('71000000000000003'));
      expect(await answers(3)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
      socket.write(signedRequest('71000000000000004'));
      expect(await answers(4)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(handled).toEqual(['71000000000000001', '71000000000000002', '71000000000000003', '71000000000000004']);
    } finally {
      socket.destroy();
      await stopServer(server);
      await router.close();
    }
  });
});
