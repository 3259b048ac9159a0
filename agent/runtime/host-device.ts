// --device /dev/X[:/dev/Y][:rwm]: the flag's text (pure) and the host node it names (one
// stat). The result is a DeviceMapping for createSpec: a node made in the container's
// /dev and a device-cgroup rule allowing exactly that access to exactly that device.
import { statSync } from 'node:fs';
import { SpecError, type DeviceMapping } from './spec.js';

import { FlagError, parseDeviceFlag as parseFlag, type DeviceFlag } from '../../shared/security.js';

export type { DeviceFlag };

/** Docker's parseDevice (shared/security.ts), its error as a SpecError. */
export function parseDeviceFlag(s: string): DeviceFlag {
  try { return parseFlag(s); } catch (err) {
    if (err instanceof FlagError) throw new SpecError('--device', err.message.replace(/^invalid --device /, ''));
    throw err;
  }
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
