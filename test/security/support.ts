/**
 * Harness for the security suite: one real server per file (Express 5, Express 4, Connect or
 * plain node:http), a keep-alive node:http client fast enough for property tests, and a raw TCP
 * client for what no well-behaved client sends (stalls, lying lengths, disconnects).
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import connect from 'connect';
import express from 'express';
import { caiboCallbacks, type CaiboCallbacksOptions, type CaiboCallbacksRouter } from '../../src';
import type { CaiboEvent } from '../../src/core/events';
import type { CallbackError } from '../../src/errors';
import type { RejectionContext } from '../../src/options';

const express4 = require('express4') as typeof express;

/** The signing secret most tests use. */
export const SECRET = 'caibo_test_sk_security_primary_5f1c2a';
/** The retired secret during a rotation. */
export const OLD_SECRET = 'caibo_test_sk_security_retired_77d09e';

export type Framework = 'express5' | 'express4' | 'connect' | 'node';

/** Every 4xx status of the Responses table (plus 408 request.timeout). */
export const TABLE_4XX = new Set([400, 401, 403, 405, 408, 409, 413, 415, 429]);

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export interface SecurityServer {
  url: string;
  port: number;
  router: CaiboCallbacksRouter;
  handled: CaiboEvent[];
  duplicates: CaiboEvent[];
  rejected: { error: CallbackError; context: RejectionContext }[];
  errors: { error: CallbackError; context: RejectionContext }[];
  logs: LogLine[];
  agent: http.Agent;
  close(): Promise<void>;
}

export interface ServerOptions {
  framework?: Framework;
  /** Runs on the Express app before the router is mounted (`trust proxy`...). */
  configure?: (app: express.Express) => void;
  /** Listen on this host. Defaults to `127.0.0.1`. */
  host?: string;
  /** Wraps the listening server (e.g. a TLS server); defaults to plain HTTP. */
  createServer?: (listener: http.RequestListener) => net.Server;
  /** The router options (secret defaults to {@link SECRET}; logger and hooks are captured). */
  options?: Partial<CaiboCallbacksOptions>;
}

/** Starts one server with the router mounted at `/callbacks`, recording handler, hooks and logs. */
export async function startServer(opts: ServerOptions = {}): Promise<SecurityServer> {
  const handled: CaiboEvent[] = [];
  const duplicates: CaiboEvent[] = [];
  const rejected: SecurityServer['rejected'] = [];
  const errors: SecurityServer['errors'] = [];
  const logs: LogLine[] = [];
  const at = (level: LogLine['level']) => (obj: Record<string, unknown>, msg?: string) => {
    logs.push({ level, obj, msg });
  };
  const given = opts.options ?? {};
  const router = caiboCallbacks({
    secret: SECRET,
    logger: { info: at('info'), warn: at('warn'), error: at('error') },
    ...given,
    onStatus: async (event, context) => {
      handled.push(event);
      await given.onStatus?.(event, context);
    },
    onDuplicate: (event, context) => {
      duplicates.push(event);
      given.onDuplicate?.(event, context);
    },
    onRejected: (error, context) => {
      rejected.push({ error, context });
      given.onRejected?.(error, context);
    },
    onError: (error, context) => {
      errors.push({ error, context });
      given.onError?.(error, context);
    },
  });

  const framework = opts.framework ?? 'express5';
  let listener: http.RequestListener;
  const fallThrough = (_req: IncomingMessage, res: ServerResponse) => {
    res.statusCode = 404;
    res.end('fell through');
  };
  if (framework === 'node') {
    listener = (req, res) => {
      if (req.url?.startsWith('/callbacks/')) {
        req.url = req.url.slice('/callbacks'.length);
        router(req, res, () => fallThrough(req, res));
      } else fallThrough(req, res);
    };
  } else if (framework === 'connect') {
    const app = connect();
    app.use('/callbacks', router);
    app.use(fallThrough);
    listener = app as unknown as http.RequestListener;
  } else {
    const app = framework === 'express5' ? express() : express4();
    opts.configure?.(app as express.Express);
    app.use('/callbacks', router);
    app.use(fallThrough);
    listener = app as unknown as http.RequestListener;
  }
  const server = opts.createServer ? opts.createServer(listener) : http.createServer(listener);
  server.listen(0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const host = opts.host === '::1' ? '[::1]' : (opts.host ?? '127.0.0.1');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  return {
    url: `http://${host}:${port}`,
    port,
    router,
    handled,
    duplicates,
    rejected,
    errors,
    logs,
    agent,
    close: async () => {
      agent.destroy();
      (server as http.Server).closeAllConnections?.();
      server.close();
      await once(server, 'close');
      await router.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface SendOptions {
  method?: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Uint8Array;
  /** Send the body chunked (no Content-Length). Defaults to `false`. */
  chunked?: boolean;
  host?: string;
}

/** One request over the server's keep-alive agent. Header arrays are sent as repeated lines. */
export function send(s: Pick<SecurityServer, 'port' | 'agent'>, o: SendOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = o.body === undefined ? undefined : typeof o.body === 'string' ? Buffer.from(o.body, 'utf8') : Buffer.from(o.body);
    const headers: OutgoingHttpHeaders = { ...o.headers };
    if (body !== undefined && !o.chunked) headers['Content-Length'] = String(body.length);
    const req = http.request(
      { host: o.host ?? '127.0.0.1', port: s.port, method: o.method ?? 'POST', path: o.path, headers, agent: s.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export interface RawResult {
  /** The raw response bytes, as text. */
  response: string;
  /** The status of the first response, or 0 when none came. */
  status: number;
  /** When the first response byte arrived, in ms after connecting (or -1). */
  firstByteMs: number;
  /** Whether the server closed the connection before `waitMs` ran out. */
  closedByServer: boolean;
}

/**
 * Writes raw bytes on a fresh TCP connection (each string/Buffer after `gapMs`) and collects what
 * comes back until the server closes or `waitMs` passes. `destroyAfterWrite` drops the
 * connection instead (a client that disconnects mid-body).
 */
export function rawExchange(
  port: number,
  parts: (string | Buffer)[],
  opts: { waitMs?: number; gapMs?: number; destroyAfterWrite?: boolean; host?: string } = {},
): Promise<RawResult> {
  const { waitMs = 2000, gapMs = 0, destroyAfterWrite = false } = opts;
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, opts.host ?? '127.0.0.1');
    let response = '';
    let firstByteMs = -1;
    let closedByServer = false;
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(response);
      resolve({ response, status: m ? Number(m[1]) : 0, firstByteMs, closedByServer });
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (d: Buffer) => {
      if (firstByteMs === -1) firstByteMs = Date.now() - started;
      response += d.toString('latin1');
    });
    socket.on('end', () => {
      closedByServer = true;
      done();
    });
    socket.on('close', () => {
      if (!settled && !destroyAfterWrite) closedByServer = true;
      done();
    });
    socket.on('error', () => undefined);
    socket.on('connect', async () => {
      for (const part of parts) {
        if (socket.destroyed) break;
        socket.write(part);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
      if (destroyAfterWrite) {
        socket.destroy();
        done();
      }
    });
  });
}

/** Waits until `predicate` holds or `ms` pass. */
export async function until(predicate: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A snapshot of the built-in prototypes' own properties, so a test can prove no input added,
 * removed or replaced any of them.
 */
export function prototypeSnapshot(): Map<string, unknown> {
  const snap = new Map<string, unknown>();
  const protos: [string, object][] = [
    ['Object', Object.prototype],
    ['Array', Array.prototype],
    ['Function', Function.prototype],
    ['String', String.prototype],
  ];
  for (const [name, proto] of protos) {
    for (const key of Reflect.ownKeys(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, key)!;
      snap.set(`${name}.${String(key)}`, 'value' in d ? d.value : d.get);
    }
  }
  return snap;
}

/** Throws when the prototypes differ from `before` (added, removed or replaced properties). */
export function assertPrototypesIntact(before: Map<string, unknown>): void {
  const now = prototypeSnapshot();
  for (const [key, value] of now) {
    if (!before.has(key)) throw new Error(`prototype pollution: ${key} was added`);
    if (before.get(key) !== value) throw new Error(`prototype pollution: ${key} was replaced`);
  }
  for (const key of before.keys()) if (!now.has(key)) throw new Error(`prototype pollution: ${key} was removed`);
  const probe = {} as Record<string, unknown>;
  for (const name of ['polluted', 'isAdmin', 'id', 'paymentRequestStatusId']) {
    if (probe[name] !== undefined) throw new Error(`prototype pollution: ({}).${name} is defined`);
  }
}
