// The one host fact the default rlimits depend on, read once per agent: whether this
// process may raise a hard limit. Root normally may (CAP_SYS_RESOURCE); a sandboxed root
// without it cannot, and neither can runc — so there the default hard NOFILE is the
// agent's own, and the bundle still runs under `runc run -b`.
import { readFileSync } from 'node:fs';

const CAP_SYS_RESOURCE = 24;
let cached: number | undefined | null = null;

/** The hard NOFILE limit a container can be given beyond which setrlimit fails, or undefined (no ceiling). */
export function nofileHardCeiling(): number | undefined {
  if (cached !== null) return cached;
  cached = undefined;
  try {
    const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
    if ((eff >> BigInt(CAP_SYS_RESOURCE)) & 1n) return cached;
    const m = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') cached = Number(m[1]);
  } catch { /* no /proc: no ceiling known */ }
  return cached;
}

let bounding: bigint | undefined;

/**
 * The capabilities this agent may hand on (its bounding set): --privileged's "every
 * capability" is every one of these. A sandboxed root lacks some (CAP_SYS_RESOURCE here),
 * and asking capset for one it lacks fails the start (EPERM).
 */
export function hostCapabilityMask(): bigint {
  if (bounding !== undefined) return bounding;
  try {
    bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
  } catch { bounding = (1n << 64n) - 1n; /* no /proc: ask for all, the kernel says which it lacks */ }
  return bounding;
}
