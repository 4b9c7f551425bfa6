/** A one-line progress bar redrawn on a TTY; a no-op elsewhere so logs and pipes stay clean. */
export interface Progress {
  tick(): void;
  done(): void;
}

const noop: Progress = { tick() {}, done() {} };

/**
 * Draws `[#####-----] 523/1000  52%  812/s` on `stream` at most every 100 ms, when the stream
 * is a terminal and there is more than one request to show.
 */
export function progressBar(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, total: number, enabled: boolean): Progress {
  if (!enabled || !stream.isTTY || total < 2) return noop;
  const started = performance.now();
  let count = 0;
  const draw = () => {
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 40));
    const filled = Math.round((count / total) * width);
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(count / seconds) : 0;
    stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${count}/${total}  ${Math.floor((count / total) * 100)}%  ${rate}/s`);
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  return {
    tick() {
      count++;
    },
    done() {
      clearInterval(timer);
      draw();
      stream.write('\r\x1b[2K');
    },
  };
}
