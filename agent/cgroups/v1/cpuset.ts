// v1 cpuset. A new v1 cpuset group starts with empty cpus and mems, and the kernel
// refuses tasks (ENOSPC) until both are set; so create() copies them down from the
// parent at every level, and an unset --cpuset-cpus means "the parent's".
import { dirname, join } from 'node:path';
import { readOptional, readText, writeValue } from '../fs.js';
import type { Plan, PlanContext, Resources } from '../types.js';

export function plan(r: Resources, _ctx?: PlanContext): Plan {
  return { writes: r.cpusetCpus !== undefined ? [{ file: 'cpuset.cpus', value: r.cpusetCpus }] : [], warnings: [] };
}

/**
 * Pure: writes that give an empty group its parent's cpus and mems. Only empty ones are
 * filled so a value an operator set on swarmlite/ (say, reserving cpu 0 for the host) stays.
 */
export function inheritPlan(own: { cpus: string; mems: string }, parent: { cpus: string; mems: string }) {
  const writes = [];
  if (own.cpus.trim() === '') writes.push({ file: 'cpuset.cpus', value: parent.cpus.trim() });
  if (own.mems.trim() === '') writes.push({ file: 'cpuset.mems', value: parent.mems.trim() });
  return writes;
}

/** Fills cpus/mems of `dir` from its parent directory. */
export function inherit(dir: string): void {
  const parent = dirname(dir);
  const own = { cpus: readOptional(join(dir, 'cpuset.cpus')) ?? '', mems: readOptional(join(dir, 'cpuset.mems')) ?? '' };
  const up = { cpus: readText(join(parent, 'cpuset.cpus')), mems: readText(join(parent, 'cpuset.mems')) };
  for (const w of inheritPlan(own, up)) writeValue(dir, w);
}
