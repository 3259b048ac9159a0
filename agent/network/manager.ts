// NetworkManager: the small interface the agent uses, composed from the CNM pieces
// (Network = bridge, Endpoint = veth, Sandbox = netns) plus IPAM and the nftables table.
// Its state file is the index of every kernel object it made, and reconcile() compares that
// index and the kernel against the containers that are really alive, so an agent restart can
// clean up anything a crash left behind without ever touching objects of other owners.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { readTextIfAny, writeJsonAtomic } from '../json-file.js';
import { join } from 'node:path';
import { NetlinkSocket } from '../../native/netlink.js';
import { nftRun } from '../../native/nftables.js';
import { formatCidr, ipToInt, overlaps, parseCidr } from '../../shared/cidr.js';
import { hostsFile, resolvConf, type HostEntry } from './dns.js';
import { deleteEndpoint, plugEndpoint, type EndpointSpec } from './endpoint.js';
import { LinkReaper, reapGroup } from './reaper.js';
import { Rounds } from '../rounds.js';
import { Limiter } from '../limiter.js';
import { failpoint } from '../failpoints.js';
import { boundSockets, socketHolder, type HostSocket } from './host.js';
import { Ipam, SubnetOverlapError } from './ipam.js';
import { listAddresses, listLinks, mustLink } from './links.js';
import { macForIp } from './netlink-msg.js';
import { ensureBridge, removeBridge } from './network.js';
import { renderDelete, renderTable, tableName, type NftDesired, type Proto } from './nftables.js';
import { Sandbox, listSandboxes } from './sandbox.js';

export { SubnetOverlapError } from './ipam.js';

export const DEFAULT_NETWORK = 'bridge';
export const DEFAULT_SUBNET = '172.17.0.0/16';

export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
export class NoSuchNetworkError extends NetworkError {
  constructor(readonly network: string) {
    super(`no such network "${network}" (list them with network ls)`);
  }
}
export class NetworkExistsError extends NetworkError {
  constructor(readonly network: string, subnet: string) {
    super(`network "${network}" already exists with subnet ${subnet}`);
  }
}
export class NetworkInUseError extends NetworkError {
  constructor(readonly network: string, readonly containers: string[]) {
    super(`network "${network}" is in use by ${containers.length} container(s) (${containers.slice(0, 3).join(', ')}); remove them first`);
  }
}
/**
 * A published port would take traffic a host socket already listens for (the DNAT acts before
 * the socket sees anything), or is published twice. `holder` says who has it.
 */
export class PortInUseError extends NetworkError {
  constructor(readonly port: number, readonly proto: Proto, readonly holder: string) {
    super(`port ${port}/${proto} is already in use on the host (${holder}); publish another port`);
  }
}
export class AlreadyAttachedError extends NetworkError {
  constructor(readonly containerId: string, readonly network: string) {
    super(`container ${containerId} is already attached to network "${network}"`);
  }
}

export interface NetworkManagerOptions {
  /** node id: names the nft table (swarmlite_<node>) and, shortened, every link */
  node: string;
  /** where network.json, ipam.json and netns/ live */
  stateDir: string;
  /** subnet of the default network "bridge" (default 172.17.0.0/16) */
  defaultSubnet?: string;
  /** node part of link names, [a-z0-9]{1,5}; default: derived from node */
  shortName?: string;
}

export interface PublishedPort {
  host: number;
  container: number;
  proto?: Proto;
}

export interface AttachOptions {
  network?: string;
  ports?: PublishedPort[];
  /** names other members of a user-defined network resolve to this container */
  aliases?: string[];
}

export interface Attachment {
  containerId: string;
  network: string;
  /** bind-mounted netns; goes into the OCI spec as the network namespace path */
  netnsPath: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac?: string;
  ports: Required<PublishedPort>[];
  aliases: string[];
}

export interface NetworkInfo {
  name: string;
  subnet: string;
  gateway: string;
  bridge: string;
  builtin: boolean;
  containers: string[];
}

export interface ReconcileReport {
  /** endpoints of containers that are gone */
  endpoints: string[];
  /** links with our prefix that nothing owned */
  links: string[];
  /** namespace files nothing owned */
  sandboxes: string[];
  /** "network/container" addresses freed */
  addresses: string[];
}

interface NetRecord {
  name: string;
  subnet: string;
  gateway: string;
  bridge: string;
  builtin: boolean;
}

interface EndpointRecord extends Attachment {
  hostIf: string;
  peerIf: string;
}

interface StateFile {
  version: 1;
  node: string;
  nextBridge: number;
  networks: Record<string, NetRecord>;
  endpoints: Record<string, EndpointRecord>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** [a-z0-9]{1,5} from a node id: readable when the id is, otherwise a hash. */
export function shortNodeName(node: string): string {
  const clean = node.toLowerCase().replace(/[^a-z0-9]/g, '');
  return clean.length > 0 && clean.length <= 5 ? clean : createHash('sha256').update(node).digest('hex').slice(0, 5);
}

export class NetworkManager {
  private readonly ipam: Ipam;
  private readonly table: string;
  private readonly prefix: string;
  private readonly sandboxDir: string;
  private readonly stateFile: string;
  private state: StateFile;
  private sock: NetlinkSocket | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly reaper: LinkReaper;
  private readonly detaches = new Rounds<string>((ids) => this.detachMany(ids));
  /** Namespace files unmounted at once on worker threads (see agent/limiter.ts). */
  private readonly slow = new Limiter(8);

  private constructor(private readonly opts: NetworkManagerOptions) {
    const short = opts.shortName ?? shortNodeName(opts.node);
    if (!/^[a-z0-9]{1,5}$/.test(short)) throw new NetworkError(`short node name "${short}" must be 1-5 of [a-z0-9]`);
    this.prefix = `swl${short}`;
    this.reaper = new LinkReaper(reapGroup(this.prefix));
    this.table = tableName(opts.node);
    this.sandboxDir = join(opts.stateDir, 'netns');
    this.stateFile = join(opts.stateDir, 'network.json');
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    this.ipam = Ipam.open(join(opts.stateDir, 'ipam.json'));
    this.state = this.load();
  }

  /**
   * Loads the state, makes sure every known network's bridge exists (a reboot removes them),
   * creates the default network on first use and installs the nft table. Call reconcile()
   * next with the containers still alive.
   */
  static async open(opts: NetworkManagerOptions): Promise<NetworkManager> {
    const m = new NetworkManager(opts);
    await m.serial(() => {
      for (const n of Object.values(m.state.networks)) m.ensureNetwork(n);
      if (!m.state.networks[DEFAULT_NETWORK]) m.createNetworkNow({ name: DEFAULT_NETWORK, subnet: opts.defaultSubnet ?? DEFAULT_SUBNET }, true);
      m.applyTable();
    });
    return m;
  }

  /** Creates a user-defined network; the same name and subnet again is a no-op. */
  createNetwork(spec: { name: string; subnet: string; gateway?: string }): Promise<NetworkInfo> {
    return this.serial(() => this.createNetworkNow(spec, false));
  }

  /** Removes a network and its bridge; refuses while containers are attached. */
  removeNetwork(name: string): Promise<void> {
    return this.serial(() => {
      const n = this.state.networks[name];
      if (!n) throw new NoSuchNetworkError(name);
      if (n.builtin) throw new NetworkError(`network "${name}" is predefined and cannot be removed`);
      const users = this.members(name).map((e) => e.containerId);
      if (users.length) throw new NetworkInUseError(name, users);
      delete this.state.networks[name];
      this.save();
      this.applyTable();
      removeBridge(this.host(), n.bridge);
      this.ipam.removePool(name);
    });
  }

  listNetworks(): NetworkInfo[] {
    return Object.values(this.state.networks).map((n) => this.info(n));
  }

  /**
   * Gives the container a sandbox on a network: netns, veth pair, address, default route and
   * the DNAT rules of its published ports. Attaching again to the same network returns the
   * existing attachment (a redelivered event must not fail).
   */
  attach(containerId: string, o: AttachOptions = {}): Promise<Attachment> {
    return this.serial(() => this.attachNow(containerId, o));
  }

  /**
   * Undoes attach; a container that is not attached is fine. Detaches asked for while others
   * are under way go together in the next round: their records and published ports leave in
   * one write and one nft table (in turn with other changes), their links in one group delete
   * on a worker thread (reaper.ts), and their addresses are released in one write, only after
   * their links are gone. Each namespace file is then unmounted on a worker thread outside
   * the round, so the next round's links go meanwhile: a round that also waited for its
   * unmounts (4 at once, each an RCU grace period) held every later removal by that much.
   * A crash anywhere in between leaves links, files and addresses nobody owns, which
   * reconcile() removes.
   */
  async detach(containerId: string): Promise<void> {
    await this.detaches.add([containerId]);
    const sandbox = this.unmounting.get(containerId);
    if (!sandbox) return; // not attached (or another detach of it unmounts it)
    this.unmounting.delete(containerId);
    // its link is gone and its address released, its namespace file still mounted
    failpoint('detach:before-unmount');
    await this.slow.run(() => new Sandbox(containerId, sandbox).deleteAsync());
  }

  /** Namespace files of containers whose round is done, to unmount (detach() does, by id). */
  private readonly unmounting = new Map<string, string>();

  /** One round of detaches; returns the containers whose endpoint could not be fully removed. */
  private async detachMany(ids: string[]): Promise<Map<string, Error>> {
    const gone = await this.serial(() => this.forget(ids));
    const errors = new Map<string, Error>();
    if (!gone.length) return errors;
    failpoint('detach:after-forget');
    await Promise.all(gone.map(async (e) => {
      try {
        await this.reaper.delete([e.hostIf, e.peerIf]);
        this.unmounting.set(e.containerId, e.netnsPath);
      } catch (err) { errors.set(e.containerId, err as Error); }
    }));
    failpoint('detach:after-links');
    // an address whose link may still exist stays taken: reconcile() frees it after a restart
    await this.serial(() => { this.ipam.releaseAll(gone.filter((e) => !errors.has(e.containerId)).map((e) => [e.network, e.containerId])); });
    return errors;
  }

  /** Drops endpoints from the record (and their published ports from the table) in one write; returns them. */
  private forget(containerIds: string[]): EndpointRecord[] {
    const gone: EndpointRecord[] = [];
    for (const id of containerIds) {
      const e = this.state.endpoints[id];
      if (!e) continue;
      delete this.state.endpoints[id];
      gone.push(e);
    }
    if (!gone.length) return gone;
    // rules first so no traffic is sent to an address about to be reused
    if (gone.some((e) => e.ports.length)) this.applyTable();
    this.save();
    return gone;
  }

  attachment(containerId: string): Attachment | undefined {
    const e = this.state.endpoints[containerId];
    if (!e) return undefined;
    const { hostIf: _h, peerIf: _p, ...a } = e;
    return a;
  }

  /**
   * After an agent restart: removes endpoints of containers not in liveContainerIds, links
   * and namespace files with our prefix that nothing owns, addresses without an owner, and
   * rewrites the nft table from what remains.
   */
  reconcile(liveContainerIds: Iterable<string>): Promise<ReconcileReport> {
    return this.serial(() => {
      const live = new Set(liveContainerIds);
      const report: ReconcileReport = { endpoints: [], links: [], sandboxes: [], addresses: [] };
      for (const id of Object.keys(this.state.endpoints)) {
        if (!live.has(id)) {
          this.detachNow(id);
          report.endpoints.push(id);
        }
      }
      for (const n of Object.values(this.state.networks)) this.ensureNetwork(n);
      const s = this.host();
      const ownedLinks = new Set<string>(Object.values(this.state.networks).map((n) => n.bridge));
      for (const e of Object.values(this.state.endpoints)) ownedLinks.add(e.hostIf).add(e.peerIf);
      for (const l of listLinks(s)) {
        if (this.isOurLinkName(l.name) && !ownedLinks.has(l.name)) {
          if (removeBridge(s, l.name)) report.links.push(l.name);
        }
      }
      const ownedNs = new Set(Object.keys(this.state.endpoints));
      for (const id of listSandboxes(this.sandboxDir)) {
        if (!ownedNs.has(id)) {
          new Sandbox(id, join(this.sandboxDir, id)).delete();
          report.sandboxes.push(id);
        }
      }
      report.addresses = this.ipam.reconcile(Object.keys(this.state.endpoints));
      this.applyTable();
      return report;
    });
  }

  /**
   * Removes every kernel object of this agent: endpoints, namespaces, bridges, the nft table
   * (ops/down). Network definitions stay in the state so the next open() recreates them;
   * endpoints and their addresses are forgotten, their containers are gone with the agent.
   */
  destroy(): Promise<void> {
    return this.serial(() => {
      for (const id of Object.keys(this.state.endpoints)) this.detachNow(id, false);
      nftRun(renderDelete(this.table));
      const s = this.host();
      for (const l of listLinks(s)) if (this.isOurLinkName(l.name)) removeBridge(s, l.name);
      for (const id of listSandboxes(this.sandboxDir)) new Sandbox(id, join(this.sandboxDir, id)).delete();
      this.ipam.reconcile([]);
      this.save();
    });
  }

  /** /etc/hosts for a container: itself, and on a user-defined network every other member by its aliases. */
  hostsFor(containerId: string, hostname?: string, extra: HostEntry[] = []): string {
    const e = this.state.endpoints[containerId];
    if (!e) throw new NetworkError(`container ${containerId} is not attached to a network`);
    const selfNames = [hostname ?? containerId.slice(0, 12), ...e.aliases];
    const net = this.state.networks[e.network];
    // As in Docker, the default network has no name resolution between containers.
    const members = net?.builtin ? [] : this.members(e.network).filter((m) => m.containerId !== containerId).map((m) => ({ ip: m.ip, names: [...m.aliases, m.containerId.slice(0, 12)] }));
    return hostsFile({ ip: e.ip, names: selfNames }, members, extra.map((x) => (x.ip === 'host-gateway' ? { ...x, ip: e.gateway } : x)));
  }

  /** resolv.conf for containers, from the host's. */
  resolvConf(hostResolvPath = '/etc/resolv.conf', opts: Parameters<typeof resolvConf>[1] = {}): string {
    let text = '';
    try {
      text = readFileSync(hostResolvPath, 'utf8');
    } catch {
      // no resolver configured on the host: containers get none either
    }
    return resolvConf(text, opts);
  }

  /** Closes the host netlink socket; kernel objects stay. */
  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }

  // ---- internals ---------------------------------------------------------------------------

  /** Runs operations one at a time: each one reads and writes the state file as a whole. */
  private serial<T>(fn: () => T): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private host(): NetlinkSocket {
    return (this.sock ??= NetlinkSocket.open());
  }

  private createNetworkNow(spec: { name: string; subnet: string; gateway?: string }, builtin: boolean): NetworkInfo {
    if (!NAME.test(spec.name)) throw new NetworkError(`invalid network name "${spec.name}" (letters, digits, "_", ".", "-")`);
    const subnet = formatCidr(parseCidr(spec.subnet));
    const existing = this.state.networks[spec.name];
    if (existing) {
      if (existing.subnet === subnet && (!spec.gateway || spec.gateway === existing.gateway)) return this.info(existing);
      throw new NetworkExistsError(spec.name, existing.subnet);
    }
    this.checkHostOverlap(subnet);
    const pool = this.ipam.addPool(spec.name, subnet, spec.gateway);
    const bridge = `${this.prefix}-${this.state.nextBridge++}`;
    if (bridge.length > 15) throw new NetworkError(`too many networks created on this node (bridge name ${bridge} exceeds 15 characters)`);
    const n: NetRecord = { name: spec.name, subnet, gateway: pool.gateway, bridge, builtin };
    this.state.networks[spec.name] = n;
    this.save();
    try {
      this.ensureNetwork(n);
      this.applyTable();
    } catch (e) {
      delete this.state.networks[spec.name];
      this.save();
      this.ipam.removePool(spec.name);
      removeBridge(this.host(), bridge);
      throw e;
    }
    return this.info(n);
  }

  private ensureNetwork(n: NetRecord): void {
    ensureBridge(this.host(), { bridge: n.bridge, gateway: n.gateway, prefixLen: parseCidr(n.subnet).prefix });
  }

  /** A subnet the host already uses (its own addresses, not our bridges) would make routes ambiguous. */
  private checkHostOverlap(subnet: string): void {
    const c = parseCidr(subnet);
    for (const n of Object.values(this.state.networks)) {
      if (overlaps(c, parseCidr(n.subnet))) throw new SubnetOverlapError(`subnet ${subnet} overlaps ${n.subnet} of network "${n.name}"`, n.name);
    }
    const s = this.host();
    const ours = new Set(listLinks(s).filter((l) => this.isOurLinkName(l.name)).map((l) => l.index));
    for (const a of listAddresses(s)) {
      if (ours.has(a.index) || !a.address) continue;
      const size = 2 ** (32 - a.prefixLen);
      const base = Math.floor(ipToInt(a.address) / size) * size;
      if (overlaps(c, { base, prefix: a.prefixLen, size })) {
        throw new SubnetOverlapError(`subnet ${subnet} overlaps ${a.address}/${a.prefixLen} used by the host; choose another subnet`);
      }
    }
  }

  private attachNow(containerId: string, o: AttachOptions): Attachment {
    if (!CONTAINER_ID.test(containerId)) throw new NetworkError(`invalid container id "${containerId}"`);
    const network = o.network ?? DEFAULT_NETWORK;
    const net = this.state.networks[network];
    if (!net) throw new NoSuchNetworkError(network);
    const had = this.state.endpoints[containerId];
    if (had) {
      if (had.network === network) return this.attachment(containerId)!;
      throw new AlreadyAttachedError(containerId, had.network);
    }
    const ports = this.checkPorts(containerId, o.ports ?? []);
    const prefixLen = parseCidr(net.subnet).prefix;
    const ip = this.ipam.allocate(network, containerId);
    const tag = createHash('sha256').update(containerId).digest('hex').slice(0, 15 - this.prefix.length - 1);
    const rec: EndpointRecord = {
      containerId,
      network,
      netnsPath: join(this.sandboxDir, containerId),
      ip,
      prefixLen,
      gateway: net.gateway,
      ports,
      aliases: [...new Set(o.aliases ?? [])],
      hostIf: `${this.prefix}v${tag}`,
      peerIf: `${this.prefix}p${tag}`,
    };
    // Recorded before anything exists in the kernel: a crash in between leaves an entry that
    // reconcile() knows how to remove, never an object nobody knows about. The address is
    // already in ipam.json (allocate wrote it), so a crash here hands nothing out twice.
    rec.mac = macForIp(ip);
    this.state.endpoints[containerId] = rec;
    this.save();
    try {
      const spec: EndpointSpec = { hostIf: rec.hostIf, peerIf: rec.peerIf, bridge: net.bridge, ip, prefixLen, gateway: net.gateway };
      const bridgeIndex = mustLink(this.host(), net.bridge).index;
      const { sb, sock } = Sandbox.createWithSocket(this.sandboxDir, containerId);
      try {
        plugEndpoint(this.host(), sock, { ...spec, mac: rec.mac, bridgeIndex }, sb);
      } finally {
        sock.close();
      }
      // The table is a function of networks and published ports only: unchanged without ports.
      if (ports.length) this.applyTable();
    } catch (e) {
      try {
        this.detachNow(containerId);
      } catch {
        // keep the original error; reconcile() will finish the cleanup
      }
      throw e;
    }
    return this.attachment(containerId)!;
  }

  private checkPorts(containerId: string, ports: PublishedPort[]): Required<PublishedPort>[] {
    const out: Required<PublishedPort>[] = [];
    const mine = new Map<string, string>();
    for (const e of Object.values(this.state.endpoints)) for (const p of e.ports) mine.set(`${p.proto}/${p.host}`, e.containerId);
    const bound = { tcp: undefined as HostSocket[] | undefined, udp: undefined as HostSocket[] | undefined };
    for (const p of ports) {
      const proto = p.proto ?? 'tcp';
      if (proto !== 'tcp' && proto !== 'udp') throw new NetworkError(`protocol "${proto as string}" must be tcp or udp`);
      for (const [what, n] of [['host', p.host], ['container', p.container]] as const) {
        if (!Number.isInteger(n) || n < 1 || n > 65535) throw new NetworkError(`${what} port ${n} is not in 1-65535`);
      }
      const key = `${proto}/${p.host}`;
      const holder = mine.get(key);
      if (holder) throw new PortInUseError(p.host, proto, holder === containerId ? 'published twice by this container' : `published by container ${holder}`);
      // A DNAT over a listening host socket would silently steal its traffic (a socket bound
      // later is shadowed all the same, as with Docker: README).
      const sock = (bound[proto] ??= boundSockets(proto)).find((b) => b.port === p.host);
      if (sock) {
        const who = socketHolder(sock.inode);
        const addr = sock.address.includes(':') ? `[${sock.address}]` : sock.address;
        throw new PortInUseError(p.host, proto, `${proto === 'tcp' ? 'listening on' : 'bound to'} ${addr}:${p.host}${who ? ` by ${who}` : ''}`);
      }
      mine.set(key, containerId);
      out.push({ host: p.host, container: p.container, proto });
    }
    return out;
  }

  private detachNow(containerId: string, apply = true): void {
    const e = this.state.endpoints[containerId];
    if (!e) return;
    // Rules first so no traffic is sent to an address about to be reused.
    delete this.state.endpoints[containerId];
    if (apply && e.ports.length) this.applyTable();
    deleteEndpoint(this.host(), e);
    new Sandbox(containerId, e.netnsPath).delete();
    this.ipam.release(e.network, containerId);
    this.save();
  }

  private applyTable(): void {
    const d: NftDesired = {
      table: this.table,
      networks: Object.values(this.state.networks).map((n) => ({ bridge: n.bridge, subnet: n.subnet })),
      ports: Object.values(this.state.endpoints).flatMap((e) => e.ports.map((p) => ({ ...p, containerIp: e.ip, owner: e.containerId }))),
    };
    nftRun(renderTable(d));
  }

  private isOurLinkName(name: string): boolean {
    const p = this.prefix;
    if (!name.startsWith(p)) return false;
    const rest = name.slice(p.length);
    return /^-\d+$/.test(rest) || new RegExp(`^[vp][0-9a-f]{${15 - p.length - 1}}$`).test(rest);
  }

  private members(network: string): EndpointRecord[] {
    return Object.values(this.state.endpoints).filter((e) => e.network === network);
  }

  private info(n: NetRecord): NetworkInfo {
    return { ...n, containers: this.members(n.name).map((e) => e.containerId) };
  }

  private load(): StateFile {
    const text = readTextIfAny(this.stateFile);
    if (text === undefined) return { version: 1, node: this.opts.node, nextBridge: 0, networks: {}, endpoints: {} };
    const s = JSON.parse(text) as StateFile;
    if (s.version !== 1) throw new NetworkError(`${this.stateFile}: unknown state version ${String(s.version)}`);
    if (s.node !== this.opts.node) throw new NetworkError(`${this.stateFile} belongs to node "${s.node}", not "${this.opts.node}"`);
    return s;
  }

  private save(): void {
    writeJsonAtomic(this.stateFile, this.state);
  }
}
