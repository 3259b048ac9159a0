// The agent's whole nftables table as a pure function of the desired state. The agent never
// edits rules one by one: it renders the table and replaces it in one transaction, so a
// restart, a retry or a reconcile can only converge, never duplicate.
import { formatCidr, parseCidr } from '../../shared/cidr.js';

export interface NftNetwork {
  bridge: string;
  /** "10.231.5.0/24" */
  subnet: string;
}

export type Proto = 'tcp' | 'udp';

export interface NftPort {
  host: number;
  container: number;
  proto: Proto;
  containerIp: string;
  /** the container it belongs to; written as a rule comment so `nft list` explains itself */
  owner: string;
}

export interface NftDesired {
  table: string;
  networks: NftNetwork[];
  ports: NftPort[];
}

export class NftSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NftSpecError';
  }
}

/** `swarmlite_<node>` with the node id reduced to what an nft identifier accepts. */
export function tableName(node: string): string {
  const clean = node.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (!clean) throw new NftSpecError(`node id "${node}" gives an empty table name`);
  return `swarmlite_${clean}`.slice(0, 64);
}

const ident = (s: string, what: string): string => {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(s)) throw new NftSpecError(`${what} "${s}" cannot be used in an nft rule`);
  return `"${s}"`;
};
const port = (n: number, what: string): number => {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new NftSpecError(`${what} port ${n} is not in 1-65535`);
  return n;
};
const comment = (s: string): string => `"${s.replace(/[^A-Za-z0-9_.:@/-]/g, '_').slice(0, 120)}"`;

/**
 * Text for libnftables that replaces table `d.table` atomically: `add` makes the `delete` safe
 * when the table does not exist yet, and all three statements are one transaction, so other
 * processes never see a half-built table. (A plain `flush table` would keep chains a previous
 * version had and is not enough when the chain set changes.)
 */
export function renderTable(d: NftDesired): string {
  const t = `ip ${tableIdent(d.table)}`;
  const nets = [...d.networks].sort((a, b) => a.bridge.localeCompare(b.bridge));
  const ports = [...d.ports].sort((a, b) => a.proto.localeCompare(b.proto) || a.host - b.host);
  const seen = new Set<string>();
  for (const p of ports) {
    const key = `${p.proto}/${p.host}`;
    if (seen.has(key)) throw new NftSpecError(`host port ${key} is published twice`);
    seen.add(key);
  }

  const L: string[] = [];
  L.push(`add table ${t}`, `delete table ${t}`, `table ${t} {`);

  // Loopback guard. route_localnet=1 on every bridge (needed so 127.0.0.1:HOSTPORT can be
  // DNATed out of the host) also lets the kernel accept 127.0.0.0/8 addresses arriving on the
  // bridge: a container with CAP_NET_RAW could write a frame to the gateway's MAC "to
  // 127.0.0.1" and talk to the host's loopback-only services (NATS). Two independent checks:
  L.push('\tset bridges {', '\t\ttype ifname;');
  if (nets.length) L.push(`\t\telements = { ${nets.map((n) => ident(n.bridge, 'bridge')).join(', ')} }`);
  L.push('\t}');
  // 1. As the container sent it, before conntrack and NAT (raw priority): no legitimate packet
  //    from a bridge has a loopback destination or source (replies to the host's 127.0.0.1
  //    connections are masqueraded to the gateway address), so dropping leaves no conntrack entry.
  L.push('\tchain loopback_guard {', '\t\ttype filter hook prerouting priority -300; policy accept;');
  L.push('\t\tiifname @bridges ip daddr 127.0.0.0/8 drop', '\t\tiifname @bridges ip saddr 127.0.0.0/8 drop', '\t}');
  // 2. As the host is about to deliver it, after NAT: from a bridge, a loopback destination is
  //    only the un-masqueraded reply of the host's own connection to a published port (DNAT).
  L.push('\tchain input {', '\t\ttype filter hook input priority 0; policy accept;');
  L.push('\t\tiifname @bridges ip daddr 127.0.0.0/8 ct status dnat accept', '\t\tiifname @bridges ip daddr 127.0.0.0/8 drop', '\t}');

  // DNAT only traffic addressed to this host (fib ... local), never traffic we merely route.
  L.push('\tchain prerouting {', '\t\ttype nat hook prerouting priority -100; policy accept;', '\t\tfib daddr type local jump published', '\t}');
  // Output: the host itself connecting to 127.0.0.1:HOSTPORT or its own address.
  L.push('\tchain output {', '\t\ttype nat hook output priority -100; policy accept;', '\t\tfib daddr type local jump published', '\t}');
  L.push('\tchain published {');
  for (const p of ports) {
    if (p.proto !== 'tcp' && p.proto !== 'udp') throw new NftSpecError(`protocol "${p.proto as string}" is not tcp or udp`);
    const ip = formatCidr(parseCidr(`${p.containerIp}/32`)).slice(0, -3);
    L.push(`\t\t${p.proto} dport ${port(p.host, 'host')} dnat to ${ip}:${port(p.container, 'container')} comment ${comment(p.owner)}`);
  }
  L.push('\t}');

  L.push('\tchain postrouting {', '\t\ttype nat hook postrouting priority 100; policy accept;');
  for (const n of nets) {
    const br = ident(n.bridge, 'bridge');
    const sub = formatCidr(parseCidr(n.subnet));
    // Leaving the network for anywhere else: hide behind the host's address.
    L.push(`\t\tip saddr ${sub} oifname != ${br} masquerade`);
    // 127.0.0.1:HOSTPORT from the host: the container cannot answer a loopback source.
    L.push(`\t\toifname ${br} ip saddr 127.0.0.0/8 masquerade`);
    // Hairpin: a member reaching a published port of its own network via the host address.
    L.push(`\t\toifname ${br} ip saddr ${sub} ct status dnat masquerade`);
  }
  L.push('\t}');

  L.push('\tchain forward {', '\t\ttype filter hook forward priority 0; policy accept;');
  // Into a network: only its own traffic, replies and published ports. This block comes for
  // every network before any "out of a network" accept, otherwise A's outbound accept would
  // let A reach B before B's drop is seen: that drop is what isolates networks.
  for (const n of nets) {
    const br = ident(n.bridge, 'bridge');
    L.push(`\t\tiifname ${br} oifname ${br} accept`); // seen here when br_netfilter is loaded
    L.push(`\t\toifname ${br} ct state established,related accept`);
    L.push(`\t\toifname ${br} ct status dnat accept`);
    L.push(`\t\toifname ${br} drop`);
  }
  // Out of a network to the outside.
  for (const n of nets) L.push(`\t\tiifname ${ident(n.bridge, 'bridge')} accept`);
  L.push('\t}');
  L.push('}');
  return L.join('\n') + '\n';
}

/** Removes the table whether or not it exists (used by destroy and by tests). */
export function renderDelete(table: string): string {
  const t = `ip ${tableIdent(table)}`;
  return `add table ${t}\ndelete table ${t}\n`;
}

function tableIdent(name: string): string {
  if (!/^swarmlite_[a-z0-9_]+$/.test(name)) throw new NftSpecError(`table name "${name}" must be swarmlite_ followed by [a-z0-9_]`);
  return name;
}
