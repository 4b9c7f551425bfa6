import { Writable } from 'node:stream';
import { progressBar } from '../../src/cli/progress';
import { formatSummary, percentile, summarise } from '../../src/cli/summary';
import { nthEvent } from '../../src/cli/notification';
import { targetUrl } from '../../src/cli/send';
import { sampleNotification } from '../../src/testing';

function stream(isTTY: boolean) {
  let text = '';
  const s = new Writable({
    write(chunk: Buffer, _e, done) {
      text += chunk.toString();
      done();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 80;
  return { s, text: () => text };
}

describe('progress bar', () => {
  it('draws on a terminal and clears its line when done', async () => {
    jest.useFakeTimers();
    try {
      const out = stream(true);
      const bar = progressBar(out.s, 4, true);
      bar.tick();
      bar.tick();
      jest.advanceTimersByTime(100);
      await Promise.resolve();
      expect(out.text()).toMatch(/\r\[#+-+\] 2\/4 {2}50%/);
      bar.tick();
      bar.tick();
      bar.done();
      expect(out.text()).toMatch(/\r\[#+\] 4\/4 {2}100%/);
      expect(out.text().endsWith('\r\x1b[2K')).toBe(true);
    } finally {
      jest.useRealTimers();
    }
  });

  it('writes nothing when stderr is not a terminal, when disabled, or for a single request', () => {
    for (const [tty, total, enabled] of [[false, 10, true], [true, 10, false], [true, 1, true]] as const) {
      const out = stream(tty);
      const bar = progressBar(out.s, total, enabled);
      bar.tick();
      bar.done();
      expect(out.text()).toBe('');
    }
  });
});

describe('summary', () => {
  it('takes nearest-rank percentiles', () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(sorted, 0.5), percentile(sorted, 0.99), percentile(sorted, 1)]).toEqual([50, 99, 100]);
    expect(percentile(new Float64Array(0), 0.5)).toBe(0);
  });

  it('groups results by status and outcome, and counts a 200 whose handler failed as failed', () => {
    const s = summarise('POST', 'http://x/callbacks/caibo', [
      { status: 200, outcome: 'handled', detail: 'OK', durationMs: 2 },
      { status: 200, outcome: 'duplicate', detail: 'OK', durationMs: 1 },
      { status: 200, outcome: 'duplicate', detail: 'OK', durationMs: 3 },
      { status: 200, outcome: 'failed', detail: 'OK', durationMs: 9 },
      { status: 503, outcome: null, detail: 'Service Unavailable', durationMs: 4 },
      { status: 0, outcome: null, detail: 'ECONNRESET', durationMs: 5 },
    ], 1000);
    expect(s).toMatchObject({ requests: 6, handled: 1, duplicate: 2, failed: 3, unlabelled: 0, statuses: { 0: 1, 200: 4, 503: 1 } });
    expect(s.rows.map((r) => [r.result, r.count])).toEqual([
      ['ERR ECONNRESET', 1],
      ['200 handled', 1],
      ['200 duplicate', 2],
      ['200 failed', 1],
      ['503 Service Unavailable', 1],
    ]);
    expect(formatSummary(s)).toMatch(/6 requests in 1\.00 s \(6\/s\): 1 handled, 2 duplicate, 3 failed$/);
  });
});

describe('send helpers', () => {
  it('derives distinct events with ids advanced as decimal strings, never through Number', () => {
    const base = sampleNotification({ id: '99999999999999999', transactionId: '0099' });
    const e = nthEvent(base, 1, 3);
    expect([e.id, e.transactionId, e.referenceId]).toEqual(['100000000000000000', '0100', '12345-2']);
    expect(nthEvent(base, 0, 1)).toBe(base);
  });

  it('appends --route to the mount URL, or keeps the route the URL names', () => {
    expect(targetUrl('http://h/callbacks', undefined).href).toBe('http://h/callbacks/caibo');
    expect(targetUrl('http://h/callbacks/', '3ds').href).toBe('http://h/callbacks/3ds');
    expect(targetUrl('http://h/callbacks/caibowh', undefined).href).toBe('http://h/callbacks/caibowh');
    expect(targetUrl('http://h/callbacks/caibowh', 'caibo-gateway').href).toBe('http://h/callbacks/caibo-gateway');
    expect(targetUrl('http://h', undefined).href).toBe('http://h/caibo');
  });
});
