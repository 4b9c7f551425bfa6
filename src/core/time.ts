let lastMs = Number.NaN;
let lastIso = '';

/**
 * `date.toISOString()`, remembered for the last millisecond seen: under load many callbacks share
 * a millisecond, and the conversion is one of the costlier steps of building an event.
 */
export function isoTime(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = date.toISOString();
  }
  return lastIso;
}
