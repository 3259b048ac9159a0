// Bridge subnets for test clusters and nodes. Each was a few random bytes, and CI once drew
// one that the host already had ("subnet 10.232.251.0/24 overlaps 10.232.251.1/24 used by
// the host"): the added node's agent refused it and the test timed out waiting for its join.
import { networkInterfaces } from 'node:os';
import { randomInt } from 'node:crypto';

/** Subnets this process handed out: their bridge may not exist yet. */
const handedOut = new Set<string>();

/** The "A.B" of every 10.A.B.x/y address on this host's interfaces (the test's network namespace). */
function inUse(): Set<string> {
  const seen = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || !a.address.startsWith('10.')) continue;
      const prefix = Number(a.cidr?.split('/')[1] ?? 32);
      const [, b, c] = a.address.split('.').map(Number);
      // a wider network than /16 holds every 10.b.x: mark what it covers in our pool
      if (prefix < 16) for (let x = 0; x < 256; x++) { if ((x >> (16 - prefix)) === (b! >> (16 - prefix))) for (let y = 0; y < 256; y++) seen.add(`${x}.${y}`); }
      else if (prefix < 24) for (let y = 0; y < 256; y++) { if ((y >> (24 - prefix)) === (c! >> (24 - prefix))) seen.add(`${b}.${y}`); }
      else seen.add(`${b}.${c}`);
    }
  }
  return seen;
}

/**
 * A /24 in 10.200.0.0-10.249.255.0 that no interface of this host overlaps and that this
 * process has not handed out before; `second` octet ranges let a test keep its own block.
 */
export function freeSubnet(second: [number, number] = [200, 250]): string {
  const used = inUse();
  for (let k = 0; k < 1000; k++) {
    const ab = `${randomInt(second[0], second[1])}.${randomInt(0, 256)}`;
    if (used.has(ab) || handedOut.has(ab)) continue;
    handedOut.add(ab);
    return `10.${ab}.0/24`;
  }
  throw new Error(`no free /24 in 10.${second[0]}-${second[1] - 1}.x.0 on this host`);
}
