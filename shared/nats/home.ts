// A long-lived connection dials its host's own server first (trust.ts serverOrder), so that it
// shares its host's fate: a cut or a kill of another host's server never takes it. After its own
// server's loss nats.js reconnects to another host's and stays there for good, and from then on
// that other server's loss is this process's too. For the active controller this cost a whole
// meta-group election: test/bench/fleet-loss.ts killed h1's server, h2's controller went to h3's;
// a later round killed h3's, which led the meta group, and the controller's log follower (an R1
// consumer on its connection's server, shared/nats/log.ts) could only be made again once the
// meta group had elected: 10.96 s without an answered write, for a server that led nothing of
// the write path. This brings the connection back once its own server is up and has caught up.
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { STREAM } from '../subjects.js';
import { hostOf, ownUrls } from './trust.js';

/** A peer of a stream's raft group as its info lists it. */
export interface Peer { name: string; current?: boolean; offline?: boolean }

/**
 * Whether the connection should go back to `own` (its host's server's name) now: it is on
 * another, and `own` leads the log or is a current replica of it. A server that has just started
 * again is a replica that is not current until it has caught up: a connection moved there then
 * would make its follower on a server that cannot serve it yet. Pure.
 */
export function shouldReturn(own: string | undefined, on: string | undefined, log: { leader?: string; replicas?: readonly Peer[] } | undefined): boolean {
  if (!own || !on || own === on || !log?.leader) return false;
  return log.leader === own || (log.replicas ?? []).some((r) => r.name === own && r.current === true && !r.offline);
}

/**
 * The connection's server list with `own` first, so that the reconnect nc.reconnect() starts
 * dials it: nats.js keeps no API for this, and rotates its list on every reconnect (the one it
 * left goes last), so after a loss the host's own server is no longer first.
 */
function putFirst(nc: NatsConnection, own: readonly string[]): boolean {
  const list = (nc as unknown as { protocol?: { servers?: { servers?: { hostname?: string; port?: number }[] } } }).protocol?.servers?.servers;
  if (!Array.isArray(list)) return false;
  const wanted = new Set(own.map((u) => { try { const x = new URL(u.includes('://') ? u : `nats://${u}`); return `${hostOf(u)}:${x.port || '4222'}`; } catch { return ''; } }));
  const at = list.findIndex((s) => wanted.has(`${String(s.hostname ?? '').replace(/^\[|\]$/g, '').toLowerCase()}:${s.port ?? 4222}`));
  if (at < 0) return false;
  list.unshift(...list.splice(at, 1));
  return true;
}

export interface HomeOptions {
  /** the connection's options (its credentials, TLS and server list): a probe dials the own server with them */
  options: ConnectionOptions;
  /** this host's addresses (trust.ts localNames) */
  local: ReadonlySet<string>;
  /** a moment to move now (e.g. no mutation under way); looked at again at the next round when false */
  quiet?: () => boolean;
  log: (line: string) => void;
  everyMs?: number;
}

/**
 * Every `everyMs` while the connection is on another host's server: a short probe connection to
 * this host's own (its name, and the log's raft group as that server sees it); once it is a
 * current replica of the log (shouldReturn), the connection is moved there (nc.reconnect, its
 * server list with its own first). Subscriptions come back by themselves; a request in flight
 * across the move is answered "no responders" or times out, which tsctl and the Appender already
 * try again (a server's loss is the same to them). Returns the stop function.
 */
export function keepOnOwnServer(nc: NatsConnection, o: HomeOptions): () => void {
  const servers = [o.options.servers ?? []].flat();
  const own = ownUrls(servers, o.local);
  if (own.length === 0) return () => undefined; // a host without a server: any is as good
  let busy = false, stopped = false, failedAt = 0, movedAt = 0;
  const look = async () => {
    if (busy || stopped || nc.isClosed() || nc.isDraining()) return;
    const on = nc.info?.server_name;
    if (on && own.some((u) => hostOf(u) === hostOf(nc.getServer()))) { movedAt = 0; return; }
    // moved a moment ago and not there: its dial failed and nats.js went on down its list; not every 2 s
    if (movedAt) { movedAt = 0; failedAt = Date.now(); o.log(`its own host's server did not take the connection (on ${on ?? '?'}): again in 30 s`); return; }
    if (Date.now() - failedAt < 30_000 || (o.quiet && !o.quiet())) return;
    busy = true;
    let probe: NatsConnection | undefined;
    try {
      probe = await connect({ ...o.options, servers: own, reconnect: false, timeout: 1000, name: 'swarmlite-home-probe' }).catch(() => undefined);
      if (!probe) return;
      const name = probe.info?.server_name;
      const info = await probe.request(`$JS.API.STREAM.INFO.${STREAM}`, new Uint8Array(0), { timeout: 1000 })
        .then((m) => JSON.parse(new TextDecoder().decode(m.data)) as { cluster?: { leader?: string; replicas?: Peer[] } }, () => undefined);
      // the name is the probe's: replicas list the others, so the own server is a replica or the leader
      if (!shouldReturn(name, nc.info?.server_name, info?.cluster)) return;
      if (!putFirst(nc, own)) { failedAt = Date.now(); o.log(`its own server ${name} is back but the connection's server list does not hold it`); return; }
      o.log(`${new Date().toISOString()} going back to its own host's server ${name} from ${on ?? '?'}`);
      movedAt = Date.now();
      await nc.reconnect();
    } catch (err) {
      failedAt = Date.now();
      o.log(`could not go back to its own host's server: ${(err as Error).message}`);
    } finally {
      busy = false;
      await probe?.close().catch(() => undefined);
    }
  };
  const t = setInterval(() => { void look(); }, o.everyMs ?? 2000);
  t.unref();
  return () => { stopped = true; clearInterval(t); };
}
