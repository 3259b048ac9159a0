// IP address management as its own contract (libnetwork keeps IPAM apart from drivers):
// pools per network subnet, one address per owner, persisted so that an agent restart
// hands out nothing twice. Everything is synchronous and written with tmp + rename, so a
// crash leaves either the old or the new file, never half of one.
import { readTextIfAny, writeJsonAtomic } from '../json-file.js';
import { dirname } from 'node:path';
import { contains, formatCidr, intToIp, ipToInt, overlaps, parseCidr, type Cidr } from '../../shared/cidr.js';

export class IpamError extends Error {
  constructor(message: string, readonly pool?: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class SubnetOverlapError extends IpamError {}
export class PoolExistsError extends IpamError {}
export class UnknownPoolError extends IpamError {}
export class PoolExhaustedError extends IpamError {}
export class PoolInUseError extends IpamError {}
export class IpamStateError extends IpamError {
  constructor(readonly path: string, why: string) {
    super(`IPAM state ${path}: ${why} (move the file away to start empty)`);
  }
}

export interface PoolInfo {
  id: string;
  subnet: string;
  gateway: string;
  /** owner id → address */
  allocations: Record<string, string>;
}

interface PoolState extends PoolInfo {
  /** last address handed out; allocation continues after it so a freed address is not reused at once */
  last: string;
}

interface StateFile {
  version: 1;
  pools: Record<string, PoolState>;
}

export class Ipam {
  private state: StateFile;

  private constructor(readonly file: string, state: StateFile) {
    this.state = state;
  }

  /** Loads the state file (a missing file is an empty state). */
  static open(file: string): Ipam {
    let state: StateFile = { version: 1, pools: {} };
    const text = readTextIfAny(file);
    if (text !== undefined) {
      try {
        state = JSON.parse(text) as StateFile;
      } catch (e) {
        throw new IpamStateError(file, `not JSON: ${(e as Error).message}`);
      }
      if (state?.version !== 1 || typeof state.pools !== 'object') throw new IpamStateError(file, 'unknown format version');
    }
    return new Ipam(file, state);
  }

  pools(): PoolInfo[] {
    return Object.values(this.state.pools).map((p) => ({ id: p.id, subnet: p.subnet, gateway: p.gateway, allocations: { ...p.allocations } }));
  }

  pool(id: string): PoolInfo | undefined {
    return this.pools().find((p) => p.id === id);
  }

  /**
   * Adds a pool; the gateway (default: first host) is reserved and never handed out. Adding the
   * same pool again with the same subnet is a no-op, so a retried create is harmless.
   */
  addPool(id: string, subnet: string, gateway?: string): PoolInfo {
    const c = parseCidr(subnet);
    if (c.prefix > 30) throw new IpamError(`subnet ${subnet} is too small (at most /30)`, id);
    const existing = this.state.pools[id];
    if (existing) {
      if (existing.subnet === formatCidr(c) && (!gateway || gateway === existing.gateway)) return this.pool(id)!;
      throw new PoolExistsError(`network "${id}" already exists with subnet ${existing.subnet}`, id);
    }
    for (const p of Object.values(this.state.pools)) {
      if (overlaps(parseCidr(p.subnet), c)) throw new SubnetOverlapError(`subnet ${subnet} overlaps ${p.subnet} of network "${p.id}"`, id);
    }
    const gw = gateway ?? intToIp(c.base + 1);
    this.checkHost(c, gw, 'gateway');
    this.state.pools[id] = { id, subnet: formatCidr(c), gateway: gw, last: gw, allocations: {} };
    this.save();
    return this.pool(id)!;
  }

  /** Removes an empty pool; a missing pool is a no-op. */
  removePool(id: string): void {
    const p = this.state.pools[id];
    if (!p) return;
    const owners = Object.keys(p.allocations);
    if (owners.length > 0) throw new PoolInUseError(`network "${id}" still has ${owners.length} address(es) allocated (${owners.slice(0, 3).join(', ')})`, id);
    delete this.state.pools[id];
    this.save();
  }

  /** An address for owner from pool id; the same owner asking again gets the same address. */
  allocate(id: string, owner: string): string {
    const p = this.mustPool(id);
    const had = p.allocations[owner];
    if (had) return had;
    const c = parseCidr(p.subnet);
    const taken = new Set(Object.values(p.allocations));
    const first = c.base + 1;
    const lastHost = c.base + c.size - 2;
    const hosts = lastHost - first + 1;
    let cur = ipToInt(p.last);
    for (let i = 0; i < hosts; i++) {
      cur = cur >= lastHost || cur < first ? first : cur + 1;
      const ip = intToIp(cur);
      if (ip === p.gateway || taken.has(ip)) continue;
      p.allocations[owner] = ip;
      p.last = ip;
      this.save();
      return ip;
    }
    throw new PoolExhaustedError(`network "${id}" (${p.subnet}) has no free address left`, id);
  }

  /** Frees owner's address in pool id; nothing to free is not an error. */
  release(id: string, owner: string): void {
    this.releaseAll([[id, owner]]);
  }

  /** release() of several [pool, owner] pairs with one write of the file. */
  releaseAll(pairs: [string, string][]): void {
    let changed = false;
    for (const [id, owner] of pairs) {
      const p = this.state.pools[id];
      if (!p || !(owner in p.allocations)) continue;
      delete p.allocations[owner];
      changed = true;
    }
    if (changed) this.save();
  }

  /** The address owner holds in pool id, if any. */
  lookup(id: string, owner: string): string | undefined {
    return this.state.pools[id]?.allocations[owner];
  }

  /** Frees every allocation whose owner is not live (leaked by a crash); returns "pool/owner" of each. */
  reconcile(liveOwners: Iterable<string>): string[] {
    const live = new Set(liveOwners);
    const freed: string[] = [];
    for (const p of Object.values(this.state.pools)) {
      for (const owner of Object.keys(p.allocations)) {
        if (!live.has(owner)) {
          delete p.allocations[owner];
          freed.push(`${p.id}/${owner}`);
        }
      }
    }
    if (freed.length) this.save();
    return freed;
  }

  private mustPool(id: string): PoolState {
    const p = this.state.pools[id];
    if (!p) throw new UnknownPoolError(`no network "${id}"`, id);
    return p;
  }

  private checkHost(c: Cidr, ip: string, what: string): void {
    const n = ipToInt(ip);
    if (!contains(c, n)) throw new IpamError(`${what} ${ip} is outside ${formatCidr(c)}`);
    if (n === c.base || n === c.base + c.size - 1) throw new IpamError(`${what} ${ip} is the network or broadcast address of ${formatCidr(c)}`);
  }

  /**
   * tmp + rename without fsync: it guards against a crash of the agent, after which the page
   * cache still has the write; a power loss also ends every container, and the next start
   * frees their addresses anyway (reconcile).
   */
  private save(): void {
    writeJsonAtomic(this.file, this.state);
  }
}
