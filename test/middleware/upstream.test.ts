/**
 * What sits in front of the router: body parsers mounted first (with and without the verify hook
 * that keeps req.rawBody), `trust proxy`, and clients that go away mid-body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import bodyParser from 'body-parser';
import express from 'express';
import request from 'supertest';
import { caiboCallbacks } from '../../src';
import { sampleNotification } from '../../src/testing';
import { errorTypes, FRAMEWORKS, harness, post, rejectedTypes, SECRET, signed, until, type Framework, type Harness } from '../helpers/callbacks';

const express4 = require('express4') as typeof express;

type Parsers = { json: typeof bodyParser.json; urlencoded: typeof bodyParser.urlencoded };
/** The body parser each framework's apps would use: express.json in Express, body-parser in Connect. */
const PARSERS: Record<Framework, Parsers> = {
  express5: express as unknown as Parsers,
  express4: express4 as unknown as Parsers,
  connect: bodyParser,
};

const keepRawBody = (req: IncomingMessage, _res: ServerResponse, buf: Buffer) => {
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = buf;
};

/** The published ids as bare JSON numbers, as a JSON sender that does not quote ids would send them. */
const BARE_NUMBERS_JSON =
  '{"id":16772761082427695,"transactionId":265111,"transactionStatusId":1,"paymentRequestStatusId":1,' +
  '"merchantId":16762420400394816,"unit":"USD","grossAmount":1.50,"fee":0.10,"netAmount":1.40,"code":"008"}';

describe.each(FRAMEWORKS)('under %s', (framework) => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  describe('a body parser mounted first', () => {
    it('fails fast with body.already_parsed (500, message naming the fix) after express.json()', async () => {
      h = await harness(framework, { before: (app) => app.use(PARSERS[framework].json()) });
      const res = await post(h, '/callbacks/caibo', sampleNotification(), { type: 'json' }).timeout(5000);
      expect(res.status).toBe(500);
      expect(res.text).toMatch(/already consumed by another body parser/);
      expect(res.text).toMatch(/mount caiboCallbacks before the parser/);
      expect(res.text).toMatch(/verify/);
      expect(errorTypes(h)).toEqual(['body.already_parsed']);
      expect(h.handled).toHaveLength(0);
    });

    it('fails fast with body.already_parsed after express.urlencoded() for a form body', async () => {
      h = await harness(framework, { before: (app) => app.use(PARSERS[framework].urlencoded({ extended: false })) });
      const res = await post(h, '/callbacks/caibowh', sampleNotification()).timeout(5000);
      expect(res.status).toBe(500);
      expect(res.text).toMatch(/mount caiboCallbacks before the parser/);
      expect(errorTypes(h)).toEqual(['body.already_parsed']);
      expect(h.handled).toHaveLength(0);
    });

    it('is untouched by a parser for another media type', async () => {
      h = await harness(framework, { before: (app) => app.use(PARSERS[framework].json()) });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(200);
      expect(h.handled).toHaveLength(1);
    });

    it('uses req.rawBody saved by the json parser verify hook, ids exact', async () => {
      h = await harness(framework, { before: (app) => app.use(PARSERS[framework].json({ verify: keepRawBody })) });
      const res = await post(h, '/callbacks/caibo', BARE_NUMBERS_JSON, { type: 'json' });
      expect(res.status).toBe(200);
      expect(h.handled).toHaveLength(1);
      expect(h.handled[0]).toMatchObject({
        paymentRequestId: '16772761082427695',
        merchantId: '16762420400394816',
        transactionId: '265111',
        grossAmount: '1.50',
        fee: '0.10',
        netAmount: '1.40',
        failure: { message: null, code: '008' },
      });
      // The signature is still checked against the saved bytes.
      const forged = await post(h, '/callbacks/caibo', BARE_NUMBERS_JSON, { type: 'json', secret: 'wrong' });
      expect(forged.status).toBe(401);
      expect(rejectedTypes(h)).toEqual(['signature.invalid']);
    });

    it('uses req.rawBody saved by the urlencoded parser verify hook', async () => {
      h = await harness(framework, {
        before: (app) => app.use(PARSERS[framework].urlencoded({ extended: false, verify: keepRawBody })),
      });
      const res = await post(h, '/callbacks/caibo', sampleNotification());
      expect(res.status).toBe(200);
      expect(h.handled[0]).toMatchObject({ paymentRequestId: '16772761082427695' });
    });

    it('still applies the size limit to a saved req.rawBody', async () => {
      h = await harness(framework, { limit: 512, before: (app) => app.use(PARSERS[framework].json({ verify: keepRawBody })) });
      const res = await post(h, '/callbacks/caibo', sampleNotification({ notes: 'n'.repeat(1000) }), { type: 'json' });
      expect(res.status).toBe(413);
      expect(rejectedTypes(h)).toEqual(['entity.too.large']);
      expect(h.handled).toHaveLength(0);
    });
  });

  describe('a client that goes away mid-body', () => {
    it('is refused with request.aborted (400) and never reaches the handler', async () => {
      h = await harness(framework);
      const { body, headers } = signed(sampleNotification());
      const socket = await abortMidBody(h.url, '/callbacks/caibo', headers, body);
      await until(() => h.rejected.length + h.errors.length > 0);
      socket.destroy();
      expect(rejectedTypes(h)).toEqual(['request.aborted']);
      expect(h.rejected[0]!.error.status).toBe(400);
      expect(h.errors).toEqual([]);
      expect(h.handled).toHaveLength(0);
      // The server is still healthy.
      expect((await post(h, '/callbacks/caibo', sampleNotification())).status).toBe(200);
    });

    it('is request.aborted, not body.already_parsed, when it leaves before the body is read', async () => {
      let arrived = false;
      h = await harness(framework, {
        // An async middleware in front (auth, logging) delays the router past the disconnect.
        before: (app) =>
          app.use((_req: IncomingMessage, _res: ServerResponse, next: () => void) => {
            arrived = true;
            setTimeout(next, 150);
          }),
      });
      const { body, headers } = signed(sampleNotification());
      const socket = net.connect(Number(new URL(h.url).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(head('/callbacks/caibo', headers, body.length + 100) + body.slice(0, 20));
      await until(() => arrived);
      socket.destroy();
      await until(() => h.rejected.length + h.errors.length > 0);
      expect({ rejected: rejectedTypes(h), errors: errorTypes(h) }).toEqual({ rejected: ['request.aborted'], errors: [] });
      expect(h.handled).toHaveLength(0);
    });
  });
});

/** The request head for a POST with the given headers and declared length. */
function head(path: string, headers: Record<string, string>, contentLength: number): string {
  const lines = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', `Content-Length: ${contentLength}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Declares a longer body than it sends, sends part of it, then closes the connection. */
async function abortMidBody(url: string, path: string, headers: Record<string, string>, body: string): Promise<net.Socket> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(head(path, headers, body.length + 100) + body);
  // Let the router start reading the body before the client goes away.
  await new Promise((resolve) => setTimeout(resolve, 100));
  socket.destroy();
  return socket;
}

describe('trust proxy', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  it.each(['express5', 'express4'] as const)('%s: honours X-Forwarded-For through req.ip when trust proxy is set', async (framework) => {
    h = await harness(framework, { allowIps: ['203.0.113.7'], before: (app) => app.set!('trust proxy', 'loopback') });
    const res = await post(h, '/callbacks/caibo', sampleNotification(), { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expect(res.status).toBe(200);
    expect(h.handledContexts[0]!.clientIp).toBe('203.0.113.7');
    const other = await post(h, '/callbacks/caibo', sampleNotification({ transactionId: '2' }), { headers: { 'X-Forwarded-For': '198.51.100.1' } });
    expect(other.status).toBe(403);
    expect(rejectedTypes(h)).toEqual(['ip.forbidden']);
    expect(h.rejected[0]!.context.clientIp).toBe('198.51.100.1');
    expect(h.handled).toHaveLength(1);
  });

  it.each([
    ['express5', express],
    ['express4', express4],
  ] as const)('%s: in a sub-app, follows the trust proxy setting it inherits from the parent app', async (_name, framework) => {
    const seen: (string | undefined)[] = [];
    const parent = framework();
    parent.set('trust proxy', 'loopback');
    const sub = framework();
    sub.use('/callbacks', caiboCallbacks({ secret: SECRET, allowIps: ['203.0.113.7'], onStatus: (_event, context) => void seen.push(context.clientIp) }));
    parent.use('/shop', sub);
    const send = (transactionId: string, forwardedFor: string) => {
      const req = signed(sampleNotification({ transactionId }), { headers: { 'X-Forwarded-For': forwardedFor } });
      return request(parent).post('/shop/callbacks/caibo').set(req.headers).send(req.body);
    };
    expect((await send('1', '203.0.113.7')).status).toBe(200);
    expect((await send('2', '198.51.100.1')).status).toBe(403);
    // Turned off later, the parent's setting is what the sub-app sees: a forged hop is ignored.
    parent.set('trust proxy', false);
    expect((await send('3', '203.0.113.7')).status).toBe(403);
    expect(seen).toEqual(['203.0.113.7']);
  });

  it.each(FRAMEWORKS)('%s: ignores a spoofed X-Forwarded-For without trust proxy', async (framework) => {
    h = await harness(framework, { allowIps: ['203.0.113.7'] });
    const res = await post(h, '/callbacks/caibo', sampleNotification(), { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expect(res.status).toBe(403);
    expect(rejectedTypes(h)).toEqual(['ip.forbidden']);
    expect(h.rejected[0]!.context.clientIp).toMatch(/127\.0\.0\.1$/);
    expect(h.handled).toHaveLength(0);
  });
});
