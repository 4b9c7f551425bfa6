/**
 * A pino-shaped logger: `info`, `warn` and `error` taking a fields object and a message. pino
 * loggers fit as they are; so does `console`. The router never passes it secrets, signatures or
 * payer data.
 */
export interface Logger {
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

/** The logger used when none is given: silent. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};
