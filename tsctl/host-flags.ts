// docker run's --privileged, --sysctl, --shm-size, --dns, --dns-search, --dns-option and
// --add-host: the options on the run command and their translation into the request, each
// bad value one line that names the flag (shared/host-config.ts checks them).
import type { Command } from 'commander';
import { LimitError, parseBytes } from '../shared/limits.js';
import {
  DEFAULT_SHM_SIZE, HostFlagError, checkShmSize, hostConfigProblem, sysctlMap, parseDns, parseDnsOption, parseDnsSearch, parseExtraHost, parseSysctl, type HostConfig,
} from '../shared/host-config.js';
import { CliError } from './client.js';

export interface HostFlagOpts {
  privileged?: boolean; sysctl?: string[]; shmSize?: string;
  dns?: string[]; dnsSearch?: string[]; dnsOption?: string[]; addHost?: string[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** Adds the flags to `c` (tsctl run). */
export function hostFlags(c: Command): Command {
  return c
    .option('--privileged', 'every capability, no seccomp, the host\'s devices, /sys and /proc writable (admins)')
    .option('--sysctl <K=V>', 'a namespaced kernel parameter: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*', collect, [])
    .option('--shm-size <size>', 'size of /dev/shm (default 64m)')
    .option('--dns <ip>', 'a name server for the container\'s /etc/resolv.conf', collect, [])
    .option('--dns-search <domain>', 'a search domain for /etc/resolv.conf ("." for none)', collect, [])
    .option('--dns-option <opt>', 'a resolver option for /etc/resolv.conf (ndots:2, edns0)', collect, [])
    .option('--add-host <name:ip>', 'a line in /etc/hosts; ip may be host-gateway', collect, []);
}

/** The request's fields from the flags; the modes are the other flags' (network, ipc). */
export function hostFlagsRequest(o: HostFlagOpts, modes: { network?: string; ipcMode?: string; utsMode?: string; pidMode?: string }): HostConfig {
  try {
    const h: HostConfig = {};
    if (o.privileged) h.privileged = true;
    if (o.sysctl?.length) h.sysctls = o.sysctl.map(parseSysctl);
    if (o.shmSize !== undefined) {
      let n: number;
      try { n = parseBytes(o.shmSize, '--memory'); } catch (err) {
        if (err instanceof LimitError) throw new HostFlagError('--shm-size', o.shmSize, 'a size such as 64m, 1g or 512k');
        throw err;
      }
      h.shmSize = checkShmSize(n, o.shmSize);
    }
    if (o.dns?.length) h.dns = o.dns.map(parseDns);
    if (o.dnsSearch?.length) h.dnsSearch = o.dnsSearch.map(parseDnsSearch);
    if (o.dnsOption?.length) h.dnsOptions = o.dnsOption.map(parseDnsOption);
    if (o.addHost?.length) h.extraHosts = o.addHost.map(parseExtraHost);
    const why = hostConfigProblem({ ...h, ...modes, network: modes.network ?? 'bridge' });
    if (why) throw new CliError(why);
    return h;
  } catch (err) {
    if (err instanceof HostFlagError) throw new CliError(err.message);
    throw err;
  }
}

/** inspect's HostConfig part for these flags, in docker's names (Sysctls a map, ShmSize in bytes). */
export function hostConfigShown(s: HostConfig): Record<string, unknown> {
  return {
    Privileged: s.privileged === true, Sysctls: Object.fromEntries(sysctlMap(s.sysctls ?? [])), ShmSize: s.shmSize ?? DEFAULT_SHM_SIZE,
    Dns: s.dns ?? [], DnsSearch: s.dnsSearch ?? [], DnsOptions: s.dnsOptions ?? [], ExtraHosts: s.extraHosts ?? [],
  };
}
