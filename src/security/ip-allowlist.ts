import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** A compiled allowlist: `match(ip)` says whether a client address is allowed. */
export interface IpMatcher {
  /** True when the allowlist is empty (every address passes). */
  readonly allowAll: boolean;
  match(ip: string | undefined): boolean;
}

/**
 * Parses an address for matching: drops an IPv6 zone id (`fe80::1%eth0`) and turns an
 * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) into its IPv4 form, so one rule covers both.
 */
export function parseClientIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const zone = ip.indexOf('%');
  const bare = zone === -1 ? ip : ip.slice(0, zone);
  if (!ipaddr.isValid(bare)) return null;
  return ipaddr.process(bare);
}

/** Compiles one allowlist entry (IP or CIDR), throwing a `TypeError` that says what is wrong. */
function compileEntry(entry: string): Range {
  if (typeof entry !== 'string' || entry.trim() !== entry || entry === '') {
    throw new TypeError(`caiboCallbacks: allowIps entry ${JSON.stringify(entry)} must be a non-blank IP or CIDR without spaces`);
  }
  if (entry.includes('/')) {
    let range: Range;
    try {
      range = ipaddr.parseCIDR(entry);
    } catch {
      throw new TypeError(`caiboCallbacks: allowIps entry "${entry}" is not a valid CIDR (examples: "203.0.113.0/24", "2001:db8::/32")`);
    }
    const [addr, bits] = range;
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return range;
  }
  const addr = parseClientIp(entry);
  if (addr === null) throw new TypeError(`caiboCallbacks: allowIps entry "${entry}" is not a valid IP address or CIDR`);
  return [addr, addr.kind() === 'ipv4' ? 32 : 128];
}

/** How many client addresses a matcher remembers its verdict for. */
const MAX_VERDICTS = 1024;

/** Compiles `allowIps` once, at start-up. An empty or absent list allows every address. */
export function compileAllowlist(entries: readonly string[] | undefined): IpMatcher {
  const ranges = (entries ?? []).map(compileEntry);
  const v4 = ranges.filter(([a]) => a.kind() === 'ipv4') as [ipaddr.IPv4, number][];
  const v6 = ranges.filter(([a]) => a.kind() === 'ipv6') as [ipaddr.IPv6, number][];
  const allowAll = ranges.length === 0;
  const verdicts = new Map<string, boolean>();
  return {
    allowAll,
    match(ip) {
      if (allowAll) return true;
      if (ip === undefined) return false;
      // Callbacks come from a handful of gateway addresses: parsing each one once saves a parse
      // per request. Bounded, so a flood of distinct addresses cannot grow it.
      const known = verdicts.get(ip);
      if (known !== undefined) return known;
      const verdict = check(ip);
      if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
      verdicts.set(ip, verdict);
      return verdict;
    },
  };

  function check(ip: string): boolean {
    const addr = parseClientIp(ip);
    if (addr === null) return false;
    if (addr.kind() === 'ipv4') return v4.some(([range, bits]) => (addr as ipaddr.IPv4).match(range, bits));
    return v6.some(([range, bits]) => (addr as ipaddr.IPv6).match(range, bits));
  }
}
