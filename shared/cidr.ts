// IPv4 arithmetic on 32-bit unsigned integers: the one place that parses "a.b.c.d/n".

export interface Cidr {
  /** network address as an unsigned 32-bit integer */
  base: number;
  prefix: number;
  /** number of addresses in the block (2^(32-prefix)) */
  size: number;
}

export class InvalidAddressError extends Error {
  constructor(readonly input: string, why: string) {
    super(`invalid address "${input}": ${why}`);
    this.name = 'InvalidAddressError';
  }
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new InvalidAddressError(ip, 'expected a dotted quad like 10.0.0.1');
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** Parses "10.1.2.0/24"; host bits must be zero so a typo like 10.1.2.5/24 is caught early. */
export function parseCidr(s: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(s.trim());
  if (!m) throw new InvalidAddressError(s, 'expected CIDR notation like 10.1.2.0/24');
  const prefix = Number(m[2]);
  if (prefix > 32) throw new InvalidAddressError(s, 'prefix longer than 32');
  const ip = ipToInt(m[1]!);
  const size = 2 ** (32 - prefix);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((ip & mask) >>> 0 !== ip) throw new InvalidAddressError(s, `host bits set (did you mean ${intToIp((ip & mask) >>> 0)}/${prefix}?)`);
  return { base: ip, prefix, size };
}

export const formatCidr = (c: Cidr): string => `${intToIp(c.base)}/${c.prefix}`;

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + c.size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}
