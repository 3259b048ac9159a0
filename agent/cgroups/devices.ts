// Device rules shared by v1 (devices.allow/deny lines) and v2 (a BPF program), and the
// one place that applies them to a container's group, whichever hierarchy it lives in.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { attachDeviceFilter } from '../../native/cgroup-bpf.js';
import { CgroupError } from './errors.js';
import { writeAll } from './fs.js';
import type { DeviceRule } from './types.js';
import * as v1 from './v1/devices.js';
import * as v2 from './v2/devices.js';

export const ACCESS_RE = /^[rwm]{0,3}$/;

/** Throws a CgroupError for a rule the kernel would reject or misread. */
export function checkDeviceRule(r: DeviceRule, i: number): void {
  const bad = (why: string) => new CgroupError(`cgroup: linux.resources.devices[${i}]: ${why}`, `devices[${i}]`, 'EINVAL');
  if (typeof r.allow !== 'boolean') throw bad('allow must be true or false');
  if (r.type !== undefined && r.type !== 'a' && r.type !== 'c' && r.type !== 'b') throw bad(`type ${JSON.stringify(r.type)} is not a, c or b`);
  // dev_t: 12 bits of major, 20 of minor; negative is the wildcard, as in runc.
  for (const [k, max] of [['major', 0xfff], ['minor', 0xfffff]] as const) {
    const v = r[k];
    if (v !== undefined && (!Number.isInteger(v) || v > max)) throw bad(`${k} ${String(v)} out of range`);
  }
  if (r.access !== undefined && (typeof r.access !== 'string' || !ACCESS_RE.test(r.access) || new Set(r.access).size !== r.access.length)) {
    throw bad(`access ${JSON.stringify(r.access)} is not a combination of r, w, m`);
  }
}

const num = (v: number | undefined) => (v === undefined || v < 0 ? '*' : String(v));

/** "c 1:3 rwm"; type a is "a" (everything, whatever follows). */
export function ruleLine(r: DeviceRule): string {
  const type = r.type ?? 'a';
  if (type === 'a') return 'a';
  return `${type} ${num(r.major)}:${num(r.minor)} ${r.access || 'rwm'}`;
}

/** Docker's (runc's) default rules: deny all, mknod of any device, use of the harmless ones. */
export function defaultDeviceRules(): DeviceRule[] {
  const c = (major: number, minor: number | undefined, access = 'rwm'): DeviceRule => ({ allow: true, type: 'c', major, ...(minor !== undefined ? { minor } : {}), access });
  return [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', access: 'm' },      // mknod of any char device (opening it is another matter)
    { allow: true, type: 'b', access: 'm' },      // and of any block device
    c(1, 3), c(1, 8), c(1, 7), c(5, 0), c(1, 5), c(1, 9), // null random full tty zero urandom
    c(136, undefined),                            // /dev/pts/*
    c(5, 2),                                      // /dev/ptmx
  ];
}

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
