// Where a container's device rules go (the v1 devices hierarchy or a cgroup2 group) and how
// they get there: handed to sl-monitor for a start, or applied now from the agent.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { attachDeviceFilter } from '../../native/cgroup-bpf.js';
import { writeAll } from './fs.js';
import type { DeviceRule } from './types.js';
import * as v1 from './v1/devices.js';
import * as v2 from './v2/devices.js';

export { checkDeviceRule, defaultDeviceRules, ruleLine } from './device-rules.js';

/** Where a group's device rules go, judged by the files the kernel put in its directory. */
export type DeviceCgroup = { version: 'v1' | 'v2'; dir: string };

export function deviceCgroupOf(procsFiles: readonly string[]): DeviceCgroup | undefined {
  for (const f of procsFiles) {
    const dir = dirname(f);
    if (existsSync(join(dir, 'devices.allow'))) return { version: 'v1', dir };
  }
  for (const f of procsFiles) {
    const dir = dirname(f);
    if (existsSync(join(dir, 'cgroup.controllers'))) return { version: 'v2', dir };
  }
  return undefined;
}

/**
 * What starting a container needs done, for sl-monitor to do between clone and join (so the
 * work overlaps the container's own setup): v1 file writes, or the v2 program's bytes.
 */
export function deviceLaunch(cg: DeviceCgroup, rules: readonly DeviceRule[]):
  { cgroupWrites?: { path: string; value: string }[]; deviceProgram?: { dir: string; program: Buffer } } {
  if (rules.length === 0) return {};
  if (cg.version === 'v1') return { cgroupWrites: v1.plan(rules).writes.map((w) => ({ path: join(cg.dir, w.file), value: w.value })) };
  return { deviceProgram: { dir: cg.dir, program: v2.program(rules) } };
}

/**
 * Applies the rules to the group now, from the agent (outside a container start), before
 * any task of the container joins it. v2: a new
 * program is attached beside any earlier one (BPF_F_ALLOW_MULTI: all must allow), so this
 * is for a fresh group, not for a live update.
 */
export function applyDeviceRules(cg: DeviceCgroup, rules: readonly DeviceRule[]): void {
  if (rules.length === 0) return;
  if (cg.version === 'v1') writeAll(cg.dir, v1.plan(rules).writes);
  else attachDeviceFilter(cg.dir, v2.program(rules));
}
