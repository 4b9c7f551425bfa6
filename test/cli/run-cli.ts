/**
 * Runs the BUILT binary (dist/cli.cjs) as a child process, the way a merchant's shell does.
 * `ensureBuilt` rebuilds it from the CLI entry of tsup.config.ts when it is missing or older
 * than a source file. Only that entry is built (no clean, no declarations), so a library entry
 * that does not compile at this moment, or another test reading dist/, is not disturbed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build, type Options } from 'tsup';
import tsupConfig from '../../tsup.config';

export const ROOT = resolve(__dirname, '../..');
export const CLI = join(ROOT, 'dist/cli.cjs');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export async function ensureBuilt(): Promise<void> {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newestSource(join(ROOT, 'src'))) return;
  const configs = (Array.isArray(tsupConfig) ? tsupConfig : [tsupConfig]) as Options[];
  const cli = configs.find((c) => c.entry !== undefined && !Array.isArray(c.entry) && 'cli' in c.entry);
  if (cli === undefined) throw new Error('tsup.config.ts has no `cli` entry');
  await build({ ...cli, config: false, silent: true, clean: false, dts: false, outDir: join(ROOT, 'dist'), entry: { cli: join(ROOT, 'src/cli/main.ts') } });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `caibo-callbacks ...args`; asynchronous, so a server in this process keeps answering. */
export function runCli(args: string[], options: { env?: Record<string, string | undefined>; input?: string | Buffer; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...options.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
