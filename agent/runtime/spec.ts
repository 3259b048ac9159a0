// The OCI runtime spec (config.json), the subset swarmlite writes and reads, and the
// defaults Docker's createSpec would produce. The same file is a valid bundle for
// `runc run -b <bundle>`, which keeps our runtime honest against the reference.

export interface OciUser { uid: number; gid: number; additionalGids?: number[] }

export interface OciCapabilities {
  bounding?: string[]; effective?: string[]; inheritable?: string[]; permitted?: string[]; ambient?: string[];
}

export interface OciProcess {
  terminal?: boolean;
  user: OciUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  noNewPrivileges?: boolean;
}

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }

export type OciNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
export interface OciNamespace { type: OciNamespaceType; path?: string }

export interface OciLinux {
  namespaces: OciNamespace[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
  cgroupsPath?: string;
}

export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: OciLinux;
}

export type NetworkConfig = { mode: 'none' } | { mode: 'host' } | { mode: 'path'; path: string };

export interface ContainerConfig {
  id: string;
  hostname: string;
  args: string[];
  env: string[]; // K=V; overrides the defaults below key by key
  cwd: string;
  user?: { uid: number; gid: number; additionalGids?: number[] };
  network: NetworkConfig;
  mounts?: { source: string; destination: string; type?: string; options?: string[] }[];
  rootfsPath: string;
  readonlyRootfs?: boolean;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set (oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Docker's masked and read-only /proc and /sys paths (oci/defaults.go). */
export const DEFAULT_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** runc's `runc spec` mounts, without the cgroup mount (cgroup v1 would need one bind per hierarchy). */
export function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

/** Defaults first, the user's values replace them key by key (Docker's order). */
function mergeEnv(hostname: string, uid: number, env: string[]): string[] {
  const out = new Map<string, string>([
    ['PATH', `PATH=${DEFAULT_PATH}`],
    ['HOSTNAME', `HOSTNAME=${hostname}`],
    ['TERM', 'TERM=xterm'],
    ['HOME', `HOME=${uid === 0 ? '/root' : '/'}`],
  ]);
  for (const kv of env) {
    const eq = kv.indexOf('=');
    out.set(eq < 0 ? kv : kv.slice(0, eq), kv);
  }
  return [...out.values()];
}

function userMount(m: NonNullable<ContainerConfig['mounts']>[number]): OciMount {
  const type = m.type ?? 'bind';
  const options = [...(m.options ?? [])];
  if (type === 'bind' && !options.includes('bind') && !options.includes('rbind')) options.unshift('rbind');
  if (type === 'bind' && !options.some((o) => /^r?(private|slave|shared|unbindable)$/.test(o))) options.push('rprivate');
  return { destination: m.destination, type, source: m.source, options };
}

export function createSpec(c: ContainerConfig): OciSpec {
  const user = c.user ?? { uid: 0, gid: 0 };
  const namespaces: OciNamespace[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (c.network.mode === 'none') namespaces.push({ type: 'network' });
  else if (c.network.mode === 'path') namespaces.push({ type: 'network', path: c.network.path });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids?.length ? { additionalGids: user.additionalGids } : {}) },
      args: [...c.args],
      env: mergeEnv(c.hostname, user.uid, c.env),
      cwd: c.cwd || '/',
      capabilities: {
        bounding: [...DEFAULT_CAPS], effective: [...DEFAULT_CAPS], inheritable: [...DEFAULT_CAPS], permitted: [...DEFAULT_CAPS],
      },
      noNewPrivileges: false,
    },
    root: { path: c.rootfsPath, readonly: c.readonlyRootfs ?? false },
    hostname: c.hostname,
    mounts: [...defaultMounts(), ...(c.mounts ?? []).map(userMount)],
    linux: {
      namespaces,
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      // runc's default is rslave; private keeps host mount events out, as the monitor does.
      rootfsPropagation: 'rprivate',
    },
  };
}
