// --device /dev/X[:/dev/Y][:rwm]: the flag's text (pure) and the host node it names (one
// stat). The result is a DeviceMapping for createSpec: a node made in the container's
// /dev and a device-cgroup rule allowing exactly that access to exactly that device.
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { SpecError, type DeviceMapping } from './spec.js';

export interface DeviceFlag { hostPath: string; containerPath: string; access: string }

const ACCESS = /^(?!.*(.).*\1)[rwm]{1,3}$/;

/** Docker's parseDevice: HOST, HOST:CONTAINER, HOST:ACCESS or HOST:CONTAINER:ACCESS. */
export function parseDeviceFlag(s: string): DeviceFlag {
  const parts = s.split(':');
  const bad = (why: string) => new SpecError('--device', `${JSON.stringify(s)}: ${why}`);
  if (parts.length > 3 || !parts[0]) throw bad('use /dev/X[:/dev/Y][:rwm]');
  let [hostPath, containerPath, access] = [parts[0], parts[0], 'rwm'];
  if (parts.length === 2) {
    if (ACCESS.test(parts[1]!)) access = parts[1]!;
    else containerPath = parts[1]!;
  } else if (parts.length === 3) {
    containerPath = parts[1]!;
    access = parts[2]!;
  }
  if (!ACCESS.test(access)) throw bad(`access ${JSON.stringify(access)} is not a combination of r, w, m`);
  for (const p of [hostPath, containerPath]) {
    if (!isAbsolute(p) || p.split('/').includes('..') || p.includes('\0')) throw bad(`${JSON.stringify(p)} is not an absolute path without ".."`);
  }
  return { hostPath, containerPath, access };
}

/** Reads the host node's kind and numbers (it must be a character or block device). */
export function deviceFromHost(f: DeviceFlag): DeviceMapping {
  let st;
  try {
    st = statSync(f.hostPath, { bigint: false });
  } catch (e) {
    throw new SpecError('--device', `${f.hostPath}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (!type) throw new SpecError('--device', `${f.hostPath} is not a device node`);
  // Linux's new_encode_dev: major in bits 8-19, minor in bits 0-7 and 20-31.
  const major = (st.rdev >> 8) & 0xfff;
  const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
  return { path: f.containerPath, type, major, minor, access: f.access, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}
