import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { formBody, sampleNotification, signPayload } from '../../src/testing';

export const SECRET = 'caibo_test_sk_multiprocess_0123456789';
const ROOT = path.resolve(__dirname, '../..');
const FIXTURE = path.join(__dirname, 'fixtures/store-app.ts');

/** One merchant app running in its own Node process. */
export interface AppProcess {
  child: ChildProcess;
  port: number;
  url: string;
  stderr(): string;
  /** SIGKILLs the process (a crash) and waits for it to exit. */
  kill(): Promise<void>;
}

/** Starts the fixture app in a child process with `env` and waits for it to listen. */
export function startApp(env: Record<string, string>): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    cwd: ROOT,
    env: { ...process.env, SECRET, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`app did not start in time: ${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`app exited with ${String(code)} before listening: ${stderr}`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /READY (\d+)/.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const port = Number(match[1]);
      resolve({
        child,
        port,
        url: `http://127.0.0.1:${port}`,
        stderr: () => stderr,
        kill: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((done) => child.once('exit', done));
          child.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}

/** The form body of event number `i` (distinct `id` and `transactionId`, so a distinct key). */
export function eventBody(i: number, tag: string): string {
  return formBody(
    sampleNotification({
      id: String(16772761082427695n + BigInt(i)),
      transactionId: String(700000 + i),
      referenceId: `${tag}-${i}`,
    }),
  );
}

/** The dedupe key the router derives for {@link eventBody}(i). */
export function eventKeyOf(i: number): string {
  return `${String(16772761082427695n + BigInt(i))}:${700000 + i}:1:1`;
}

export interface Delivery {
  status: number;
  retryAfter: string | null;
  body: string;
}

/** POSTs a signed callback, as Caibo would. */
export async function deliver(baseUrl: string, body: string): Promise<Delivery> {
  const res = await fetch(`${baseUrl}/callbacks/caibo`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Signature': signPayload(body, SECRET) },
    body,
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
}

/** Runs `tasks` with at most `concurrency` at once. */
export async function pool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** A deterministic shuffle (so a failure can be replayed). */
export function shuffled<T>(items: T[], seed = 42): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
