import { readFile } from 'node:fs/promises';
import { signPayload } from '../testing/sign';
import { EXIT, parseCommand, readAll, secretOption, UsageError, type Io } from './args';

export const SIGN_HELP = `Usage: caibo-callbacks sign [<body>] [--file <path>] [--secret <key>]

Prints the X-Signature value Caibo sends with a body: the Base64 HMAC-SHA512 of its exact
bytes, keyed with your API key. For a GET callback, sign the raw query string after "?".

The body is <body>, the bytes of --file, or standard input (when neither is given).

Options:
  --secret <key>   the key to sign with. Defaults to $CAIBO_SECRET; prefer the variable,
                   since arguments end up in shell history and process lists
  --file <path>    sign this file's exact bytes ("-" reads standard input)
  -h, --help       show this help

Examples:
  CAIBO_SECRET=... caibo-callbacks sign 'id=16772761082427695&transactionId=265111'
  CAIBO_SECRET=... caibo-callbacks sign --file notification.txt
  printf '%s' "$BODY" | CAIBO_SECRET=... caibo-callbacks sign

Exit codes: 0 printed, 2 usage error (no body, no secret, unknown option).`;

async function bodyFrom(positionals: string[], file: string | undefined, io: Io): Promise<Buffer> {
  if (positionals.length > 1) throw new UsageError('sign takes one body; quote it (or use --file)');
  if (positionals.length === 1 && file !== undefined) throw new UsageError('give the body as an argument or with --file, not both');
  if (positionals.length === 1) return Buffer.from(positionals[0]!, 'utf8');
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file);
    } catch (error) {
      throw new UsageError(`cannot read --file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  if (file === undefined && io.stdin.isTTY) throw new UsageError('no body: pass it as an argument, with --file, or on standard input');
  return readAll(io.stdin);
}

/** `caibo-callbacks sign`: prints the signature of a body. */
export async function signCommand(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(args, { secret: { type: 'string' }, file: { type: 'string' } });
  if (parsed === null) {
    io.stdout.write(`${SIGN_HELP}\n`);
    return EXIT.ok;
  }
  const secret = secretOption(parsed.values.secret, io.env);
  const body = await bodyFrom(parsed.positionals, parsed.values.file, io);
  if (body.length > 0 && body[body.length - 1] === 0x0a && parsed.positionals.length === 0) {
    // `echo body | sign` adds a newline the real request will not carry.
    io.stderr.write('note: the body ends with a newline, which is signed too; use printf instead of echo if the request has none\n');
  }
  io.stdout.write(`${signPayload(body, secret)}\n`);
  return EXIT.ok;
}
