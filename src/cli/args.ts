import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Where a command writes; `process` in the binary, a capture in tests. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment. */
export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `parseArgs` in strict mode with `-h/--help` added. Returns `null` when help was asked for (the
 * caller prints it and exits 0); turns parseArgs' own errors into {@link UsageError}s.
 */
export function parseCommand<O extends Options>(args: string[], options: O) {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    if ((parsed.values as { help?: boolean }).help) return null;
    return parsed;
  } catch (error) {
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}

/** Parses a whole number in `[min, max]`, or throws a {@link UsageError} naming the flag. */
export function intOption(flag: string, value: string | undefined, fallback: number, min = 1, max = 1_000_000): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** The signing key: `--secret`, else `$CAIBO_SECRET`. */
export function secretOption(value: string | undefined, env: NodeJS.ProcessEnv): string {
  const secret = value ?? env.CAIBO_SECRET;
  if (secret === undefined || secret === '') {
    throw new UsageError('no secret: set CAIBO_SECRET (preferred: arguments end up in shell history) or pass --secret');
  }
  if (secret.trim() !== secret) {
    throw new UsageError('the secret has leading or trailing whitespace; trim it, or signatures will never match');
  }
  return secret;
}

/** Reads a readable stream to its end as bytes. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}
