// --device /dev/X[:/dev/Y][:rwm]: the flag's text (pure) and the host node it names (one
// stat). The result is a DeviceMapping for createSpec: a node made in the container's
// /dev and a device-cgroup rule allowing exactly that access to exactly that device.
import { lstatSync, readdirSync, statSync } from 'node:fs';
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

/** What runc's HostDevices leaves out: another filesystem's nodes (pts, shm, mqueue), fd links, the console, and ptmx (the container's is its own devpts's). */
const SKIP_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);
const SKIP_FILES = new Set(['console', 'ptmx']);

/**
 * --privileged: every character and block device node under the host's /dev, as runc's
 * HostDevices lists them (symlinks and other files skipped), each with its owner and mode,
 * so the container's fresh /dev has them all.
 */
export function hostDevices(root = '/dev'): DeviceMapping[] {
  const out: DeviceMapping[] = [];
  const walk = (dir: string, rel: string, depth: number) => {
    let names: string[];
    try { names = readdirSync(dir); } catch { return; }
    for (const n of names.sort()) {
      const p = `${dir}/${n}`;
      let st;
      try { st = lstatSync(p); } catch { continue; } // gone meanwhile
      if (st.isDirectory()) {
        if (!SKIP_DIRS.has(n) && depth < 8) walk(p, `${rel}/${n}`, depth + 1);
        continue;
      }
      if (SKIP_FILES.has(n) && rel === '/dev') continue;
      const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
      if (!type || /[\0\n]/.test(n)) continue;
      const major = (st.rdev >> 8) & 0xfff;
      const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
      out.push({ path: `${rel}/${n}`, type, major, minor, access: 'rwm', fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    }
  };
  walk(root, '/dev', 0);
  return out;
}
