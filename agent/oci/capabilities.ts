// process.capabilities that this runtime cannot grant. runtime-spec (config.md, since 1.1):
// a capability that "cannot be granted otherwise MUST be logged as a warning by the runtime.
// Runtimes SHOULD NOT fail if the container configuration requests capabilities that cannot
// be granted, for example, if the runtime operates in a restricted environment". Nothing
// outside the runtime's own bounding set can reach a process it starts (capset(2) refuses it
// with EPERM), so such a name is left out of every set, with a warning. A name that is no
// capability at all (CAP_TEST) stays in for the launch encoder to refuse, as runtime-tools'
// process_capabilities_fail expects of a 1.0 runtime.
import { readFileSync } from 'node:fs';
import { CAPABILITIES } from '../runtime/launch.js';

const SETS = ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const;

export interface Ungrantable {
  /** process.capabilities with the ungrantable names removed (anything else as it was). */
  capabilities: unknown;
  /** The names removed, each once, in the order first seen. */
  dropped: string[];
}

/** Pure: removes from each set the known capabilities whose bit is not in grantable. */
export function withoutUngrantable(capabilities: unknown, grantable: bigint): Ungrantable {
  if (!capabilities || typeof capabilities !== 'object' || Array.isArray(capabilities)) return { capabilities, dropped: [] };
  const dropped: string[] = [];
  const out: Record<string, unknown> = { ...(capabilities as Record<string, unknown>) };
  for (const k of SETS) {
    const v = out[k];
    if (!Array.isArray(v)) continue;
    out[k] = v.filter((n) => {
      const bit = typeof n === 'string' ? CAPABILITIES[n] : undefined;
      if (bit === undefined || (grantable >> BigInt(bit)) & 1n) return true;
      if (!dropped.includes(n as string)) dropped.push(n as string);
      return false;
    });
  }
  return { capabilities: out, dropped };
}

/** Pure: the CapBnd mask of a /proc/<pid>/status text, or undefined without one. */
export function parseCapBnd(status: string): bigint | undefined {
  const m = /^CapBnd:\s*([0-9a-f]{1,16})$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/** This process's bounding set: its children can hold nothing outside it. */
export function ownBoundingSet(): bigint | undefined {
  try { return parseCapBnd(readFileSync('/proc/self/status', 'utf8')); } catch { return undefined; }
}

/**
 * The process with the capabilities this runtime cannot grant left out, each named in a
 * warning on stderr. Without a readable bounding set nothing is left out (capset decides).
 */
export function grantableProcess<P extends { capabilities?: unknown } | undefined>(p: P, what: string): P {
  const bnd = ownBoundingSet();
  if (bnd === undefined || !p || p.capabilities === undefined) return p;
  const { capabilities, dropped } = withoutUngrantable(p.capabilities, bnd);
  if (!dropped.length) return p;
  process.stderr.write(`sl-runtime: warning: ${what}: ${dropped.join(', ')} not in this runtime's bounding set and cannot be granted, left out\n`);
  return { ...p, capabilities } as P;
}
