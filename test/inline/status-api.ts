import type { IncomingMessage, ServerResponse } from 'node:http';
import { serve } from './support';

/** A scripted answer of the fake status API. */
export type Scripted =
  | { status: number; body?: string; headers?: Record<string, string>; delayMs?: number }
  | ((req: IncomingMessage) => { status: number; body?: string; headers?: Record<string, string>; delayMs?: number });

/** The published status response for a payment request, as JSON text with bare 17-digit numbers. */
export function statusBody(fields: { id?: string; paymentRequestStatusId?: number; transactionId?: string; transactionStatusId?: number } = {}): string {
  const id = fields.id ?? '16772761082427695';
  const tx = fields.transactionId ?? '265111';
  return `{"id":${id},"paymentRequestStatusId":${fields.paymentRequestStatusId ?? 1},"transactionId":${tx},"transactionNumber":"T-265111",` +
    `"transactionStatusId":${fields.transactionStatusId ?? 1},"unit":"USD","amount":10.50,"referenceId":"12345","notes":"Payment notes",` +
    `"client":{"id":16772748432912191,"name":"Client Name","email":"client@email.com","phone":"1234567890"},` +
    `"notifyUrl":"https://merchant.example/callbacks/caibo","successUrl":null,"failureUrl":null,` +
    `"lastLog":{"transactionStatusId":1,"message":null,"code":"000"}}`;
}

/**
 * A local server that answers like Caibo's documented status API: `GET /payment-requests/status/{id}`
 * with `X-API-Key`. Each request takes the next scripted answer (the last one repeats).
 */
export async function fakeStatusApi(script: Scripted[], apiKey = 'caibo_test_sk_status') {
  const seen: { path: string; apiKey: string | undefined }[] = [];
  let index = 0;
  const server = await serve((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ path: req.url ?? '', apiKey: req.headers['x-api-key'] as string | undefined });
    if (req.headers['x-api-key'] !== apiKey) {
      res.statusCode = 401;
      res.end('{"error":"unauthorized"}');
      return;
    }
    const step = script[Math.min(index++, script.length - 1)]!;
    const answer = typeof step === 'function' ? step(req) : step;
    const send = () => {
      if (res.destroyed) return;
      res.statusCode = answer.status;
      res.setHeader('content-type', 'application/json');
      for (const [k, v] of Object.entries(answer.headers ?? {})) res.setHeader(k, v);
      res.end(answer.body ?? '');
    };
    if (answer.delayMs) setTimeout(send, answer.delayMs);
    else send();
  });
  return { ...server, seen, apiKey };
}
