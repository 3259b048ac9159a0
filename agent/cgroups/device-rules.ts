// Device-cgroup rules, pure: validation, the v1 line of a rule, and the default list
// (runc's, which Docker uses). v1/devices.ts and v2/devices.ts encode them; devices.ts applies.
import { CgroupError } from './errors.js';
import type { DeviceRule } from './types.js';

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
