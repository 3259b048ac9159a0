// Name resolution files for containers. There is no embedded DNS server: containers on a
// user-defined network find each other through an /etc/hosts the agent bind-mounts, rebuilt
// from the network's members.

export interface HostEntry {
  ip: string;
  names: string[];
}

const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})$/;

/** Names that are valid in a hosts file, deduplicated, in order. */
function cleanNames(names: string[]): string[] {
  return [...new Set(names.filter((n) => NAME.test(n)))];
}

/** An address as a hosts or resolv.conf line may hold it: nothing but address characters (no blank, no newline). */
const ADDRESS = /^[0-9A-Fa-f.:]{2,45}$/;
/** A resolv.conf search domain or option: one word of these characters, nothing that ends a line. */
const WORD = /^[A-Za-z0-9_.:-]{1,253}$/;

/**
 * /etc/hosts for one container: loopback lines, the --add-host entries (docker's order), itself,
 * then the other members of its network (a member listed twice or with no valid name is
 * skipped). The schema checked every --add-host; an entry that still is not one address and
 * one name is dropped here rather than written as a line of its own.
 */
export function hostsFile(self: HostEntry, members: HostEntry[], extra: HostEntry[] = []): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const e of extra) {
    const names = cleanNames(e.names);
    if (ADDRESS.test(e.ip) && names.length) lines.push(`${e.ip}\t${names.join(' ')}`);
  }
  const selfNames = cleanNames(self.names);
  if (selfNames.length) lines.push(`${self.ip}\t${selfNames.join(' ')}`);
  const seen = new Set([self.ip]);
  for (const m of [...members].sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }))) {
    if (seen.has(m.ip)) continue;
    const names = cleanNames(m.names);
    if (!names.length) continue;
    seen.add(m.ip);
    lines.push(`${m.ip}\t${names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * resolv.conf for a container from the host's: nameservers on loopback are dropped (inside
 * the container's namespace 127.0.0.x is the container itself), search/options are kept,
 * explicit settings replace the host's.
 */
export function resolvConf(hostResolv: string, opts: { nameservers?: string[]; search?: string[]; options?: string[] } = {}): string {
  let ns: string[] = [];
  let search: string[] = [];
  let options: string[] = [];
  for (const raw of hostResolv.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0] && !/^127\.|^::1$/.test(rest[0])) ns.push(rest[0]);
    else if (key === 'search' || key === 'domain') search = rest;
    else if (key === 'options') options.push(...rest);
  }
  // --dns, --dns-search, --dns-option (checked by the schema; a value that is not one word is dropped, never a line)
  if (opts.nameservers) ns = opts.nameservers.filter((n) => ADDRESS.test(n));
  if (opts.search) search = opts.search.filter((d) => WORD.test(d));
  if (opts.options) options = opts.options.filter((o) => WORD.test(o));
  // docker's --dns-search .: no search domains at all
  if (search.includes('.')) search = [];
  const out: string[] = [];
  for (const n of ns) out.push(`nameserver ${n}`);
  if (search.length) out.push(`search ${search.join(' ')}`);
  if (options.length) out.push(`options ${options.join(' ')}`);
  return out.join('\n') + (out.length ? '\n' : '');
}
