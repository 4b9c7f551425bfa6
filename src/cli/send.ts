import { signPayload } from '../testing/sign';
import { EXIT, intOption, parseCommand, secretOption, UsageError, type Io } from './args';
import { deliverAll, type Delivery, type DeliveryResult } from './deliver';
import { buildNotification, encode, nthEvent, STATUSES } from './notification';
import { progressBar } from './progress';
import { formatSummary, summarise } from './summary';

export const SEND_HELP = `Usage: caibo-callbacks send <url> [options]

Builds a Caibo notification, signs it with your key and sends it to <url>: where the router is
mounted (http://localhost:3000/callbacks) or one of its routes (.../callbacks/caibo). Prints a
table of how the requests ended, with latencies.

Notification (starts from Caibo's published example):
  --status <status>        ${Object.keys(STATUSES).join(' | ')} (default paid)
  --file <path>            start from this notification instead: a JSON object of fields or a
                           form body; --status and the flags below still apply
  --id <digits>            payment request id
  --transaction-id <n>     transaction id
  --amount <decimal>       gross and net amount (fee 0)
  --currency <code>        unit: USD, EUR, BTC, USDT...
  --reference <text>       referenceId (your order reference)
  --merchant-id <digits>   merchantId
  --field <name=value>     set any field; repeat for several
  --format <form|json>     body encoding (default form, as Caibo sends)
  --method <POST|GET>      GET puts the fields in the query string (caibo-gateway and 3ds)

Delivery:
  --route <route>          caibo | caibo-gateway | caibowh | 3ds, appended to <url>
                           (default caibo, or the route <url> already ends with)
  --secret <key>           the key to sign with. Defaults to $CAIBO_SECRET (preferred:
                           arguments end up in shell history)
  --events <n>             distinct events (default 1): event n gets id+n, transactionId+n
                           and referenceId "<reference>-<n>"
  --repeat <n>             send every event n times (default 1): all events once, then all
                           again, so copies after the first are duplicates
  --concurrency <n>        requests in flight at once (default 1). Above --events, copies of
                           one event overlap and some are answered 409 (in flight): the router
                           at work, not a bug
  --timeout <ms>           per request (default 30000)
  --json                   print the summary as JSON
  --no-progress            no progress bar (it is drawn only when stderr is a terminal)
  -h, --help               show this help

"handled" and "duplicate" come from the router's Caibo-Callbacks-Outcome response header,
sent while its test endpoints are on (NODE_ENV is not production). Without it, 200s are
listed as "200 OK".

Examples:
  export CAIBO_SECRET=caibo_test_sk_...
  caibo-callbacks send http://localhost:3000/callbacks
  caibo-callbacks send http://localhost:3000/callbacks --route caibowh --status declined
  caibo-callbacks send http://localhost:3000/callbacks --events 200 --repeat 5 --concurrency 20

Exit codes: 0 every request answered 2xx, 1 some request failed (non-2xx, no response, or the
handler failed), 2 usage error.`;

const ROUTES = ['caibo', 'caibo-gateway', 'caibowh', '3ds'];

/** The URL to send to: <url> with --route appended (or put in place of the route it ends with). */
export function targetUrl(raw: string, route: string | undefined): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`"${raw}" is not a URL; pass where the router is mounted, e.g. http://localhost:3000/callbacks`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the URL must be http or https, got ${url.protocol}`);
  if (route !== undefined && !ROUTES.includes(route)) throw new UsageError(`--route must be one of ${ROUTES.join(', ')}, got "${route}"`);
  const segments = url.pathname.split('/').filter(Boolean);
  const endsWithRoute = segments.length > 0 && ROUTES.includes(segments[segments.length - 1]!);
  if (endsWithRoute && route === undefined) return url;
  if (endsWithRoute) segments.pop();
  segments.push(route ?? 'caibo');
  url.pathname = `/${segments.join('/')}`;
  return url;
}

const OPTIONS = {
  status: { type: 'string' },
  file: { type: 'string' },
  id: { type: 'string' },
  'transaction-id': { type: 'string' },
  amount: { type: 'string' },
  currency: { type: 'string' },
  reference: { type: 'string' },
  'merchant-id': { type: 'string' },
  field: { type: 'string', multiple: true },
  format: { type: 'string' },
  method: { type: 'string' },
  route: { type: 'string' },
  secret: { type: 'string' },
  events: { type: 'string' },
  repeat: { type: 'string' },
  concurrency: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
} as const;

/** `caibo-callbacks send`: builds, signs and posts notifications, then prints a summary. */
export async function sendCommand(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(args, OPTIONS);
  if (parsed === null) {
    io.stdout.write(`${SEND_HELP}\n`);
    return EXIT.ok;
  }
  const v = parsed.values;
  if (parsed.positionals.length !== 1) throw new UsageError(parsed.positionals.length === 0 ? 'send needs the URL to send to' : 'send takes one URL');
  const url = targetUrl(parsed.positionals[0]!, v.route);
  const format = v.format ?? 'form';
  if (format !== 'form' && format !== 'json') throw new UsageError(`--format must be form or json, got "${format}"`);
  const method = (v.method ?? 'POST').toUpperCase();
  if (method !== 'POST' && method !== 'GET') throw new UsageError(`--method must be POST or GET, got "${v.method}"`);
  if (method === 'GET' && v.format !== undefined) throw new UsageError('--format does not apply to GET: the fields go in the query string');
  const events = intOption('events', v.events, 1);
  const repeat = intOption('repeat', v.repeat, 1, 1, 1000);
  const concurrency = intOption('concurrency', v.concurrency, 1, 1, 1000);
  const timeoutMs = intOption('timeout', v.timeout, 30_000, 1, 600_000);
  const secret = secretOption(v.secret, io.env);

  const base = await buildNotification({
    file: v.file,
    status: v.status,
    id: v.id,
    transactionId: v['transaction-id'],
    amount: v.amount,
    currency: v.currency,
    reference: v.reference,
    merchantId: v['merchant-id'],
    fields: v.field,
  });

  // Each event is encoded and signed once; its copies reuse the same bytes, as Caibo's retries do.
  const prepared: Delivery[] = [];
  for (let i = 0; i < events; i++) {
    const fields = nthEvent(base, i, events);
    if (method === 'GET') {
      const query = encode(fields, 'form');
      const target = new URL(url);
      target.search = '';
      prepared.push({ url: `${target.href}?${query}`, method, body: undefined, headers: { 'X-Signature': signPayload(query, secret) } });
    } else {
      const body = encode(fields, format);
      const contentType = format === 'json' ? 'application/json' : 'application/x-www-form-urlencoded';
      prepared.push({ url: url.href, method, body, headers: { 'Content-Type': contentType, 'X-Signature': signPayload(body, secret) } });
    }
  }

  const total = events * repeat;
  const results: DeliveryResult[] = new Array(total);
  const progress = progressBar(io.stderr, total, !v['no-progress'] && !v.json);
  const started = performance.now();
  // Round by round: every event once, then every event again, so a copy follows its first
  // delivery by a whole round instead of racing it.
  await deliverAll(total, concurrency, (index) => prepared[index % events]!, timeoutMs, (index, result) => {
    results[index] = result;
    progress.tick();
  });
  progress.done();
  const summary = summarise(method, url.href, results, performance.now() - started);
  io.stdout.write(v.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary.failed === 0 ? EXIT.ok : EXIT.failed;
}
