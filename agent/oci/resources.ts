// linux.resources of a config.json → the agent's Resources (agent/cgroups writes them,
// v1 or v2). Pure. A limit the OCI way spells "none" (-1, 0, absent) is left unset.
import type { Resources } from '../cgroups/types.js';
import type { OciResources } from './bundle.js';

export function toResources(r: OciResources | undefined): Resources {
  const out: Resources = {};
  if (!r) return out;
  if (r.memory?.limit !== undefined && r.memory.limit > 0) out.memory = r.memory.limit;
  if (r.memory?.swap !== undefined && r.memory.swap !== 0) out.memorySwap = r.memory.swap;
  if (r.cpu?.shares) out.cpuShares = r.cpu.shares;
  // quota and period go as given (ociWrites): --cpus would turn them into docker's fixed period
  if (r.cpu?.cpus) out.cpusetCpus = r.cpu.cpus;
  if (r.pids?.limit !== undefined && r.pids.limit > 0) out.pidsLimit = r.pids.limit;
  if (r.blockIO?.weight) out.blkioWeight = r.blockIO.weight;
  return out;
}

const SEG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Pure: linux.cgroupsPath → the group's path under each hierarchy root. Absolute: that path
 * (runc's meaning); relative: under the root's own parent group; absent: <parent>/<id>.
 * Only plain names, at most 16 levels: no "..", no systemd "slice:prefix:name".
 */
export function groupPath(cgroupsPath: unknown, parent: string, id: string): string {
  if (cgroupsPath === undefined || cgroupsPath === '') return `${parent}/${id}`;
  if (typeof cgroupsPath !== 'string') throw new Error('linux.cgroupsPath: not a string');
  const segs = cgroupsPath.split('/').filter((s, i) => !(i === 0 && s === ''));
  if (segs.length === 0 || segs.length > 16 || !segs.every((s) => SEG_RE.test(s))) {
    throw new Error(`linux.cgroupsPath: ${JSON.stringify(cgroupsPath.slice(0, 200))} is not a path of plain names (letters, digits, '_', '.', '-')`);
  }
  return cgroupsPath.startsWith('/') ? segs.join('/') : `${parent}/${segs.join('/')}`;
}

/** One write the agent's Resources have no field for: a file of a controller's group. */
export interface OciWrite { controller: string; file: string; value: string; field: string }

const dev = (d: { major: number; minor: number }) => `${d.major}:${d.minor}`;

function u32(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff) throw new Error(`linux.resources.${field}: not an integer in 0..4294967295: ${JSON.stringify(v)}`);
  return v as number;
}

/**
 * Pure: linux.resources.network and hugepageLimits, checked, as [controller, file, value,
 * field] (v1 names; the caller renames hugetlb's for v2). One file line each: an interface
 * name is what the kernel takes (no blank, no '/', at most 15 bytes), so no value can smuggle
 * a second line into net_prio.ifpriomap, and a page size is a number with KB, MB or GB.
 */
function networkAndHugetlb(r: OciResources): [string, string, string, string][] {
  const out: [string, string, string, string][] = [];
  const n = r.network;
  if (n?.classID !== undefined) out.push(['net_cls', 'net_cls.classid', String(u32('network.classID', n.classID)), 'network.classID']);
  (n?.priorities ?? []).forEach((p, i) => {
    const f = `network.priorities[${i}]`;
    if (typeof p?.name !== 'string' || !/^[^\s/]{1,15}$/.test(p.name)) throw new Error(`linux.resources.${f}.name: not an interface name: ${JSON.stringify(String(p?.name).slice(0, 40))}`);
    out.push(['net_prio', 'net_prio.ifpriomap', `${p.name} ${u32(`${f}.priority`, p.priority)}`, 'network.priorities']);
  });
  (r.hugepageLimits ?? []).forEach((h, i) => {
    const f = `hugepageLimits[${i}]`;
    if (typeof h?.pageSize !== 'string' || !/^[1-9][0-9]{0,5}[KMG]B$/.test(h.pageSize)) throw new Error(`linux.resources.${f}.pageSize: not a page size like 2MB: ${JSON.stringify(String(h?.pageSize).slice(0, 40))}`);
    if (!Number.isSafeInteger(h.limit) || h.limit < 0) throw new Error(`linux.resources.${f}.limit: not a non-negative integer: ${JSON.stringify(h.limit)}`);
    out.push(['hugetlb', `hugetlb.${h.pageSize}.limit_in_bytes`, String(h.limit), 'hugepageLimits']);
  });
  return out;
}

/**
 * Pure: the rest of linux.resources as cgroup writes, in the order to make them (runc's files
 * and order): cpu quota with its own period, realtime, cpuset mems, memory reservation,
 * kernel, kernelTCP, swappiness, the OOM killer, blkio leaf/device weights and throttles,
 * then net_cls, net_prio and hugetlb limits. v2 has no kmem, swappiness, oom_control, net_cls
 * nor net_prio: those are left out (the caller warns). Throws on a malformed network or
 * hugepageLimits value.
 */
export function ociWrites(r: OciResources | undefined, version: 'v1' | 'v2'): { writes: OciWrite[]; unsupported: string[] } {
  const writes: OciWrite[] = [];
  const unsupported: string[] = [];
  if (!r) return { writes, unsupported };
  const w = (controller: string, file: string, value: string | number, field: string) => writes.push({ controller, file, value: String(value), field });
  const c = r.cpu, m = r.memory, b = r.blockIO;
  const nh = networkAndHugetlb(r);
  if (version === 'v1') {
    if (c?.period) w('cpu', 'cpu.cfs_period_us', c.period, 'cpu.period');
    if (c?.quota !== undefined && c.quota !== 0) w('cpu', 'cpu.cfs_quota_us', c.quota, 'cpu.quota');
    if (c?.realtimePeriod) w('cpu', 'cpu.rt_period_us', c.realtimePeriod, 'cpu.realtimePeriod');
    if (c?.realtimeRuntime !== undefined && c.realtimeRuntime !== 0) w('cpu', 'cpu.rt_runtime_us', c.realtimeRuntime, 'cpu.realtimeRuntime');
    if (c?.mems) w('cpuset', 'cpuset.mems', c.mems, 'cpu.mems');
    if (m?.reservation !== undefined && m.reservation !== 0) w('memory', 'memory.soft_limit_in_bytes', m.reservation, 'memory.reservation');
    if (m?.kernel !== undefined && m.kernel !== 0) w('memory', 'memory.kmem.limit_in_bytes', m.kernel, 'memory.kernel');
    if (m?.kernelTCP !== undefined && m.kernelTCP !== 0) w('memory', 'memory.kmem.tcp.limit_in_bytes', m.kernelTCP, 'memory.kernelTCP');
    if (m?.swappiness !== undefined && m.swappiness !== null) w('memory', 'memory.swappiness', m.swappiness, 'memory.swappiness');
    if (m?.disableOOMKiller === true) w('memory', 'memory.oom_control', 1, 'memory.disableOOMKiller');
    if (b?.leafWeight) w('blkio', 'blkio.leaf_weight', b.leafWeight, 'blockIO.leafWeight');
    for (const d of b?.weightDevice ?? []) {
      if (d.weight) w('blkio', 'blkio.weight_device', `${dev(d)} ${d.weight}`, 'blockIO.weightDevice');
      if (d.leafWeight) w('blkio', 'blkio.leaf_weight_device', `${dev(d)} ${d.leafWeight}`, 'blockIO.weightDevice');
    }
    for (const [k, file] of THROTTLES) for (const d of b?.[k] ?? []) w('blkio', file, `${dev(d)} ${d.rate}`, `blockIO.${k}`);
    for (const [ctl, file, value, field] of nh) w(ctl, file, value, field);
    return { writes, unsupported };
  }
  if (c?.quota !== undefined && c.quota !== 0) w('cpu', 'cpu.max', `${c.quota > 0 ? c.quota : 'max'} ${c.period || 100_000}`, 'cpu.quota');
  else if (c?.period) w('cpu', 'cpu.max', `max ${c.period}`, 'cpu.period');
  if (c?.mems) w('cpuset', 'cpuset.mems', c.mems, 'cpu.mems');
  if (m?.reservation !== undefined && m.reservation > 0) w('memory', 'memory.low', m.reservation, 'memory.reservation');
  const io = new Map<string, string[]>();
  for (const [k, , key] of THROTTLES) for (const d of b?.[k] ?? []) io.set(dev(d), [...(io.get(dev(d)) ?? []), `${key}=${d.rate}`]);
  for (const [d, kv] of io) w('io', 'io.max', `${d} ${kv.join(' ')}`, 'blockIO throttle');
  // v2 has no net_cls/net_prio (the eBPF socket hooks took their place)
  for (const [ctl, file, value, field] of nh) {
    if (ctl === 'hugetlb') w(ctl, file.replace(/\.limit_in_bytes$/, '.max'), value, field);
    else if (!unsupported.includes(field)) unsupported.push(field);
  }
  for (const [f, v] of [['cpu.realtimeRuntime', c?.realtimeRuntime], ['memory.kernel', m?.kernel], ['memory.kernelTCP', m?.kernelTCP], ['memory.swappiness', m?.swappiness],
    ['memory.disableOOMKiller', m?.disableOOMKiller || undefined], ['blockIO.leafWeight', b?.leafWeight], ['blockIO.weightDevice', b?.weightDevice?.length || undefined]] as const) {
    if (v !== undefined && v !== null && v !== 0) unsupported.push(f);
  }
  return { writes, unsupported };
}

type ThrottleKey = 'throttleReadBpsDevice' | 'throttleWriteBpsDevice' | 'throttleReadIOPSDevice' | 'throttleWriteIOPSDevice';
const THROTTLES: readonly [ThrottleKey, string, string][] = [
  ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device', 'rbps'],
  ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device', 'wbps'],
  ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device', 'riops'],
  ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device', 'wiops'],
];
