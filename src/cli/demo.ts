import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { caiboCallbacks } from '../http/middleware';
import type { CallbackStore, PaymentStateStore } from '../stores/types';
import { MemoryStore } from '../stores/memory';
import { signPayload } from '../testing/sign';
import { formBody, PUBLISHED_EXAMPLE_BODY, sampleNotification } from '../testing/samples';

/** What an app factory given to the demo must accept and return (examples/basic's `createApp` fits). */
export type DemoAppFactory = (options: { secret: string; allowIps: string[]; store: CallbackStore }) => { app: RequestListener };

/** One row of the demo's table. */
export interface DemoRow {
  request: string;
  status: number;
  handlerRan: boolean;
}

const SECRET = 'demo_secret_do_not_use';

function defaultApp({ secret, allowIps, store }: Parameters<DemoAppFactory>[0]): { app: RequestListener } {
  const router = caiboCallbacks({ secret, allowIps, store, onStatus: () => undefined });
  return {
    app: (req, res) => {
      if (req.url?.startsWith('/callbacks/')) {
        req.url = req.url.slice('/callbacks'.length);
        router(req, res, () => {
          res.statusCode = 404;
          res.end('Not Found');
        });
      } else {
        res.statusCode = 404;
        res.end('Not Found');
      }
    },
  };
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * Starts an app on a free loopback port with the memory store and sends it the requests a
 * merchant should see handled and refused; returns one row per request. Handler runs are counted
 * as store completions, which happen only after the app's own handler returned.
 */
export async function runDemo(options: { createApp?: DemoAppFactory } = {}): Promise<DemoRow[]> {
  let completions = 0;
  const memory = new MemoryStore();
  const store: CallbackStore & PaymentStateStore = {
    claim: (key, opts) => memory.claim(key, opts),
    complete: async (key, token, opts) => {
      await memory.complete(key, token, opts);
      completions++;
    },
    release: (key, token) => memory.release(key, token),
    getPaymentState: (id) => memory.getPaymentState(id),
    setPaymentState: (id, state, opts) => memory.setPaymentState(id, state, opts),
  };
  const factory = options.createApp ?? defaultApp;
  const { app } = factory({ secret: SECRET, allowIps: ['127.0.0.1'], store });
  const count = () => completions;
  const server = createServer(app);
  const port = await listen(server, '::');
  const rows: DemoRow[] = [];

  const send = async (label: string, init: { host?: string; path?: string; method?: string; body?: string; signature?: string }) => {
    const before = count();
    const host = init.host ?? '127.0.0.1';
    const res = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${port}/callbacks${init.path ?? '/caibo'}`, {
      method: init.method ?? 'POST',
      headers: init.body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'x-signature': init.signature ?? '' },
      body: init.body,
    });
    await res.text();
    rows.push({ request: label, status: res.status, handlerRan: count() > before });
  };

  try {
    const next = formBody(sampleNotification({ transactionId: '265112', transactionStatusId: '1', paymentRequestStatusId: '1' }));
    await send('documented notification, signed', { body: PUBLISHED_EXAMPLE_BODY, signature: signPayload(PUBLISHED_EXAMPLE_BODY, SECRET) });
    await send('the same notification again', { body: PUBLISHED_EXAMPLE_BODY, signature: signPayload(PUBLISHED_EXAMPLE_BODY, SECRET) });
    await send('next state (new transaction)', { path: '/caibowh', body: next, signature: signPayload(next, SECRET) });
    await send('bad signature', { body: PUBLISHED_EXAMPLE_BODY, signature: signPayload(PUBLISHED_EXAMPLE_BODY, 'not-the-secret') });
    await send('GET on a POST-only route', { method: 'GET' });
    try {
      await send('from a non-allowed address (::1)', { host: '::1', body: next, signature: signPayload(next, SECRET) });
    } catch {
      // No IPv6 loopback on this machine: that row is simply left out.
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections?.();
    await memory.close();
  }
  return rows;
}

/** Renders rows as a fixed-width table. */
export function formatDemoTable(rows: readonly DemoRow[]): string {
  const head = ['#', 'request', 'status', 'handler ran'];
  const body = rows.map((r, i) => [String(i + 1), r.request, String(r.status), r.handlerRan ? 'yes' : 'no']);
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
