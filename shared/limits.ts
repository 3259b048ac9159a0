// Docker-style resource flags: parsing, validation and the allocation sum.
// Pure and shared: tsctl rejects a bad flag before anything is sent, the controller
// re-checks what arrives (another client may skip tsctl) and schedules with allocated().
import type { ResourceLimits } from './events.js';

/**
 * Resource limits of one container. `undefined` means "not set" (on a live update:
 * "leave as it is"). -1 means unlimited for memory, memorySwap and pidsLimit; cpus 0
 * means no CPU quota (docker's `--cpus 0`).
 */
export interface Resources {
  cpus?: number;
  cpuShares?: number;
  cpusetCpus?: string;
  memory?: number;
  memorySwap?: number;
  pidsLimit?: number;
  blkioWeight?: number;
}

// The event schema carries the same shape; keep the two from drifting apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _sameShape: Same<Resources, ResourceLimits> = true;
void _sameShape;

export type LimitFlag =
  | '--cpus' | '--cpu-shares' | '--cpuset-cpus' | '--memory' | '--memory-swap' | '--pids-limit' | '--blkio-weight';

/** A rejected flag value. The message is the one line a user sees. */
export class LimitError extends Error {
  constructor(readonly flag: LimitFlag, readonly value: string, readonly fix: string) {
    super(`invalid ${flag} ${JSON.stringify(value)}: ${fix}`);
    this.name = 'LimitError';
  }
}

export const MIB = 1024 * 1024;
/** Docker refuses less: below this the runtime itself cannot start inside the limit. */
export const MIN_MEMORY = 6 * MIB;
export const MIN_CPU_SHARES = 2;
export const MAX_CPU_SHARES = 262144;
/** The kernel's PID_MAX_LIMIT: more than this can never be enforced differently from "unlimited". */
export const MAX_PIDS = 4194304;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: MIB, g: 1024 * MIB, t: 1024 * 1024 * MIB };
// Like docker's RAMInBytes: binary units, optional "b"/"ib" after the letter, any case, decimals allowed.
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i;

/** '64m' | '1g' | '512k' | '1048576' → bytes (rounded down to whole bytes). */
export function parseBytes(s: string, flag: LimitFlag = '--memory'): number {
  const m = BYTES_RE.exec(s.trim());
  const fix = 'use a number with an optional unit b, k, m or g';
  if (!m) throw new LimitError(flag, s, fix);
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n)) throw new LimitError(flag, s, 'too large');
  return n;
}

/** --memory: bytes, at least 6 MiB. */
export function parseMemory(s: string): number {
  const n = parseBytes(s, '--memory');
  if (n < MIN_MEMORY) throw new LimitError('--memory', s, 'the minimum is 6m');
  return n;
}

/** --memory-swap: memory plus swap; -1 is unlimited swap; needs --memory and must be ≥ it. */
export function parseMemorySwap(s: string, memory: number | undefined): number {
  const n = s.trim() === '-1' ? -1 : parseBytes(s, '--memory-swap');
  if (memory === undefined || memory <= 0) throw new LimitError('--memory-swap', s, 'set --memory as well (--memory-swap is memory plus swap)');
  if (n !== -1 && n < memory) throw new LimitError('--memory-swap', s, 'must be at least --memory, or -1 for unlimited swap');
  return n;
}

/** --cpus: a positive decimal number of CPUs ('0.5', '1.5'). Node bounds: validateResources. */
export function parseCpus(s: string): number {
  const t = s.trim();
  const fix = 'use a positive number of CPUs such as 0.5 or 2';
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(t)) throw new LimitError('--cpus', s, fix);
  const n = Number(t);
  // Below 0.01 the quota is under the kernel's 1 ms minimum at the 100 ms period.
  if (!(n >= 0.01)) throw new LimitError('--cpus', s, fix + ' (at least 0.01)');
  return n;
}

/** --cpu-shares: relative weight 2..262144 (1024 is the default of every group). */
export function parseCpuShares(s: string): number {
  const n = parseInteger(s);
  if (n === undefined || n < MIN_CPU_SHARES || n > MAX_CPU_SHARES) {
    throw new LimitError('--cpu-shares', s, `use a whole number from ${MIN_CPU_SHARES} to ${MAX_CPU_SHARES} (default 1024)`);
  }
  return n;
}

/** --pids-limit: a positive number of tasks, or -1 for unlimited. */
export function parsePidsLimit(s: string): number {
  const n = parseInteger(s);
  if (n === undefined || n === 0 || n < -1 || n > MAX_PIDS) {
    throw new LimitError('--pids-limit', s, `use a whole number from 1 to ${MAX_PIDS}, or -1 for unlimited`);
  }
  return n;
}

/** --blkio-weight: relative block I/O weight 10..1000. */
export function parseBlkioWeight(s: string): number {
  const n = parseInteger(s);
  if (n === undefined || n < 10 || n > 1000) throw new LimitError('--blkio-weight', s, 'use a whole number from 10 to 1000');
  return n;
}

/** --cpuset-cpus: '0', '0-1', '0,1', '0-2,5' → the canonical string (as given, trimmed). */
export function parseCpusetCpus(s: string): string {
  cpuList(s);
  return s.trim();
}

/** The CPU numbers of a cpuset list, sorted and unique. Throws LimitError on bad syntax. */
export function cpuList(s: string): number[] {
  const fix = "use CPU numbers and ranges such as 0, 0-1 or 0,2";
  const out = new Set<number>();
  const t = s.trim();
  if (t === '') throw new LimitError('--cpuset-cpus', s, fix);
  for (const part of t.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new LimitError('--cpuset-cpus', s, fix);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 8191) throw new LimitError('--cpuset-cpus', s, fix);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

export interface NodeCpus { cpus: number }

/**
 * Checks resources against each other and against the node that will run them.
 * Used on values that did not come through the parse* functions (events, API calls).
 */
export function validateResources(r: Resources, node?: NodeCpus): Resources {
  if (r.cpus !== undefined) {
    if (!Number.isFinite(r.cpus) || r.cpus < 0) throw new LimitError('--cpus', String(r.cpus), 'use a positive number of CPUs such as 0.5 or 2');
    if (node && r.cpus > node.cpus) {
      throw new LimitError('--cpus', String(r.cpus), `the node has ${node.cpus} CPU${node.cpus === 1 ? '' : 's'}; use at most ${node.cpus}`);
    }
  }
  if (r.cpuShares !== undefined) parseCpuShares(String(r.cpuShares));
  if (r.cpusetCpus !== undefined) {
    const list = cpuList(r.cpusetCpus);
    const bad = node ? list.find((c) => c >= node.cpus) : undefined;
    if (node && bad !== undefined) {
      throw new LimitError('--cpuset-cpus', r.cpusetCpus, `CPU ${bad} does not exist; the node has CPUs 0-${node.cpus - 1}`);
    }
  }
  if (r.memory !== undefined && r.memory !== -1) {
    if (!Number.isSafeInteger(r.memory)) throw new LimitError('--memory', String(r.memory), 'use a number with an optional unit b, k, m or g');
    if (r.memory < MIN_MEMORY) throw new LimitError('--memory', String(r.memory), 'the minimum is 6m');
  }
  if (r.memorySwap !== undefined) {
    if (!Number.isSafeInteger(r.memorySwap) || r.memorySwap < -1) {
      throw new LimitError('--memory-swap', String(r.memorySwap), 'use a number with an optional unit b, k, m or g, or -1');
    }
    parseMemorySwap(String(r.memorySwap), r.memory === -1 ? undefined : r.memory);
  }
  if (r.pidsLimit !== undefined) parsePidsLimit(String(r.pidsLimit));
  if (r.blkioWeight !== undefined) parseBlkioWeight(String(r.blkioWeight));
  return r;
}

export type ResourceFlags = Partial<Record<LimitFlag, string>>;

/** Parses every flag given (as tsctl receives them) into Resources, cross-checked. */
export function parseResourceFlags(f: ResourceFlags, node?: NodeCpus): Resources {
  const r: Resources = {};
  if (f['--cpus'] !== undefined) r.cpus = parseCpus(f['--cpus']);
  if (f['--cpu-shares'] !== undefined) r.cpuShares = parseCpuShares(f['--cpu-shares']);
  if (f['--cpuset-cpus'] !== undefined) r.cpusetCpus = parseCpusetCpus(f['--cpuset-cpus']);
  if (f['--memory'] !== undefined) r.memory = parseMemory(f['--memory']);
  if (f['--memory-swap'] !== undefined) r.memorySwap = parseMemorySwap(f['--memory-swap'], r.memory);
  if (f['--pids-limit'] !== undefined) r.pidsLimit = parsePidsLimit(f['--pids-limit']);
  if (f['--blkio-weight'] !== undefined) r.blkioWeight = parseBlkioWeight(f['--blkio-weight']);
  return validateResources(r, node);
}

export interface Allocation { cpus: number; memory: number }

/**
 * What a set of containers claims of a node: a CPU quota counts as its value, a
 * cpuset without a quota as its CPU count (it cannot use more), memory as its limit.
 * Unlimited containers claim nothing; that is docker's (and swarm's) accounting too.
 */
export function allocated(list: Iterable<Resources | undefined>): Allocation {
  let cpus = 0, memory = 0;
  for (const r of list) {
    if (!r) continue;
    if (r.cpus !== undefined && r.cpus > 0) cpus += r.cpus;
    else if (r.cpusetCpus !== undefined) cpus += cpuList(r.cpusetCpus).length;
    if (r.memory !== undefined && r.memory > 0) memory += r.memory;
  }
  return { cpus: Math.round(cpus * 1000) / 1000, memory };
}

function parseInteger(s: string): number | undefined {
  const t = s.trim();
  if (!/^-?\d+$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}
