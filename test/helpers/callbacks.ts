/**
 * Shared test harness for the caiboCallbacks router: one function mounts it in Express 5,
 * Express 4 or Connect on a real listening server, and one builds a signed request. Requests are
 * signed only through the public testing helpers (signPayload, formBody, sampleNotification).
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import connect from 'connect';
import express from 'express';
import request from 'supertest';
import { caiboCallbacks, type CaiboCallbacksOptions, type CaiboCallbacksRouter } from '../../src';
import type { CallbackError } from '../../src/errors';
import type { CaiboEvent } from '../../src/core/events';
import type { CallbackContext, RejectionContext } from '../../src/options';
import { MemoryStore } from '../../src/stores/memory';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

// `express4` is an npm alias of express@4 with no types of its own; its API is the same shape.
const express4 = require('express4') as typeof express;

/** The secret most tests sign with. */
export const SECRET = 'caibo_test_sk_primary_0123456789';
/** A second secret for rotation tests. */
export const NEXT_SECRET = 'caibo_test_sk_next_9876543210';

export type Framework = 'express5' | 'express4' | 'connect';
export const FRAMEWORKS: readonly Framework[] = ['express5', 'express4', 'connect'];

/** A minimal app shape the harness mounts into (Express 4, Express 5 and Connect all fit). */
type Mountable = {
  use(...args: unknown[]): unknown;
};

/** Everything a test needs to assert on: handler calls, hook calls, store, log lines. */
export interface Harness {
  framework: Framework;
  url: string;
  router: CaiboCallbacksRouter;
  store: MemoryStore;
  /** Events the handler (`onStatus`) was called with, in order. */
  handled: CaiboEvent[];
  handledContexts: CallbackContext[];
  rejected: { error: CallbackError; context: RejectionContext }[];
  errors: { error: CallbackError; context: RejectionContext }[];
  duplicates: CaiboEvent[];
  /** Errors that reached the app's own error handler through next(err). */
  appErrors: unknown[];
  /** A supertest agent bound to the listening server. */
  http(): ReturnType<typeof request>;
  close(): Promise<void>;
}

export interface HarnessOptions extends Partial<CaiboCallbacksOptions> {
  /** Runs before the router is mounted (to mount body parsers first, set `trust proxy`, …). */
  before?: (app: Mountable & { set?: (name: string, value: unknown) => unknown }) => void;
  /** Where the router is mounted. Defaults to `/callbacks`. */
  mountPath?: string;
  /** The address the server listens on. Defaults to `127.0.0.1`; `::` gives IPv4-mapped client addresses. */
  host?: string;
}

/** Creates the app for a framework. */
export function createApp(framework: Framework): Mountable & { set?: (name: string, value: unknown) => unknown } {
  if (framework === 'express5') return express() as unknown as Mountable;
  if (framework === 'express4') return express4() as unknown as Mountable;
  return connect() as unknown as Mountable;
}

/** Listens on an ephemeral loopback port and returns the base URL. */
export async function listen(handler: http.RequestListener, host = '127.0.0.1'): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(handler);
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}` };
}

/** Drops the server's connections (keep-alive ones too) and waits until it has closed. */
export async function stopServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

/**
 * Mounts `caiboCallbacks` at `/callbacks` in the given framework, on a listening server. Anything
 * the router passes on answers 404 `fell through`; errors passed to next(err) are recorded and
 * answered 500 `app error: <message>`.
 */
export async function harness(framework: Framework, options: HarnessOptions = {}): Promise<Harness> {
  const { before, mountPath = '/callbacks', host, ...routerOptions } = options;
  const handled: CaiboEvent[] = [];
  const handledContexts: CallbackContext[] = [];
  const rejected: Harness['rejected'] = [];
  const errors: Harness['errors'] = [];
  const duplicates: CaiboEvent[] = [];
  const appErrors: unknown[] = [];
  const store = (routerOptions.store as MemoryStore | undefined) ?? new MemoryStore();
  const userOnStatus = routerOptions.onStatus;

  const router = caiboCallbacks({
    secret: SECRET,
    ...routerOptions,
    store,
    onStatus: async (event, context) => {
      handled.push(event);
      handledContexts.push(context);
      if (userOnStatus) await userOnStatus(event, context);
    },
    onRejected: (error, context) => {
      rejected.push({ error, context });
      routerOptions.onRejected?.(error, context);
    },
    onError: (error, context) => {
      errors.push({ error, context });
      routerOptions.onError?.(error, context);
    },
    onDuplicate: (event, context) => {
      duplicates.push(event);
      routerOptions.onDuplicate?.(event, context);
    },
  });

  const app = createApp(framework);
  before?.(app);
  app.use(mountPath, router);
  app.use((_req: IncomingMessage, res: ServerResponse) => {
    res.statusCode = 404;
    res.end('fell through');
  });
  app.use((error: unknown, _req: IncomingMessage, res: ServerResponse, _next: unknown) => {
    appErrors.push(error);
    res.statusCode = 500;
    res.end(`app error: ${error instanceof Error ? error.message : String(error)}`);
  });

  const { server, url } = await listen(app as unknown as http.RequestListener, host);
  return {
    framework,
    url,
    router,
    store,
    handled,
    handledContexts,
    rejected,
    errors,
    duplicates,
    appErrors,
    http: () => request(url),
    close: async () => {
      await stopServer(server);
      await router.close();
    },
  };
}

/** How a test request is encoded and signed. */
export interface SignedOptions {
  /** `form` (default), `json`, or a literal Content-Type header. */
  type?: 'form' | 'json' | string;
  /** The secret to sign with. Defaults to {@link SECRET}. */
  secret?: string;
  /** A literal X-Signature value, or `null` to send none. Defaults to the correct signature. */
  signature?: string | null;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/** A body ready to send: its exact bytes and headers. */
export interface SignedRequest {
  body: string;
  headers: Record<string, string>;
}

const FORM = 'application/x-www-form-urlencoded';

/**
 * Builds a signed request. `payload` is fields (encoded as form or JSON per `type`) or the exact
 * body text. The signature covers exactly the bytes sent.
 */
export function signed(payload: Record<string, string> | string = sampleNotification(), options: SignedOptions = {}): SignedRequest {
  const type = options.type ?? 'form';
  const contentType = type === 'form' ? FORM : type === 'json' ? 'application/json' : type;
  const body = typeof payload === 'string' ? payload : type === 'json' ? JSON.stringify(payload) : formBody(payload);
  const headers: Record<string, string> = { 'Content-Type': contentType, ...options.headers };
  const signature = options.signature === undefined ? signPayload(body, options.secret ?? SECRET) : options.signature;
  if (signature !== null) headers['X-Signature'] = signature;
  return { body, headers };
}

/** POSTs a signed request to `path` (relative to the server root). */
export function post(h: Pick<Harness, 'http'>, path: string, payload?: Record<string, string> | string, options?: SignedOptions) {
  const { body, headers } = signed(payload, options);
  return h.http().post(path).set(headers).send(body);
}

/** GETs `path` with the fields in the query string, the raw query signed. */
export function getSigned(h: Pick<Harness, 'http'>, path: string, fields: Record<string, string> = sampleNotification(), options: Omit<SignedOptions, 'type'> = {}) {
  const query = formBody(fields);
  const signature = options.signature === undefined ? signPayload(query, options.secret ?? SECRET) : options.signature;
  const req = h.http().get(`${path}?${query}`).set(options.headers ?? {});
  return signature === null ? req : req.set('X-Signature', signature);
}

/** Types of the errors passed to onRejected, in order. */
export function rejectedTypes(h: Harness): string[] {
  return h.rejected.map((r) => r.error.type);
}

/** Types of the errors passed to onError, in order. */
export function errorTypes(h: Harness): string[] {
  return h.errors.map((r) => r.error.type);
}

/** Waits until `predicate` holds or `ms` pass (for hooks that run after the response is written). */
export async function until(predicate: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A logger that records every call, for asserting what is (and is not) logged. */
export function capturingLogger() {
  const lines: { level: 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const at = (level: 'info' | 'warn' | 'error') => (obj: Record<string, unknown>, msg?: string) => {
    lines.push({ level, obj, msg });
  };
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

/** A response read by {@link rawRequest}. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * Sends exact bytes with node:http (superagent re-encodes a Buffer body sent as a form, so bodies
 * with invalid UTF-8 must go this way).
 */
export function rawRequest(url: string, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
