// What losing a host or a nats-server costs (issue 11's reach), on a simulated fleet (ops/fleet,
// 3 hosts, a controller, an agent and a nats-server on each). Not a test: it prints figures.
// - host: a service of 6 replicas runs 2/2/2; a host that does not lead is cut off (ops/fleet
//   partition). Timed from the cut: its NodeDown in the view (goal <= 3 s, the default silence),
//   and all 6 tasks running on the other hosts (goal <= 5 s after the NodeDown), both read from
//   the events' own timestamps (NodeDown, the replacements' ContainerStarted), not from polls.
//   The victim leads neither the log's nor the lease's raft group when such a host exists.
// - server: a writer makes one API write (a node label, appended by the controller) after
//   another through the other servers; a nats-server that does not serve the leader is killed.
//   The server killed is the one leading the log's raft group when that is not the leader's host
//   (the worst case). Printed: the longest time without an answered write after the kill (goal
//   <= 2 s), and whether every answered write's event is in the log afterwards (goal: none lost).
//   server-follower: the server killed leads neither the log nor serves the leader (the usual case).
//   node dist/test/bench/fleet-loss.js [ROUNDS=2] [host|server|server-follower|both]
//   FLEET_LOSS_TRACE=1 prints each event of a host round's move; FLEET_LOSS_TRACE=DIR also keeps
//   every process's log (where a connection dropped and came back) under DIR.
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { connectOptions, readCreds } from '../../shared/nats/trust.js';
import { call } from '../../shared/nats/rpc.js';
import { controllerApi } from '../../shared/api/controller.js';
import { STREAM, subjects } from '../../shared/subjects.js';
import { LEASE_BUCKET, LEASE_KEY, streamApi } from '../../controller/lease.js';
import { Fleet, sleep } from '../helpers/fleet.js';
import { runTsctl } from '../helpers/cluster.js';

const ROUNDS = Number(process.argv[2] ?? 2);
const MODE = process.argv[3] ?? 'both';
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN; };

async function leaderHost(nc: NatsConnection): Promise<string> {
  for (let k = 0; k < 200; k++) {
    try {
      const jsm = await streamApi(nc, 1000);
      const m = await jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, { last_by_subj: `$KV.${LEASE_BUCKET}.${LEASE_KEY}` });
      const h = (JSON.parse(new TextDecoder().decode(m.data)) as { host: string }).host;
      if (h) return h;
    } catch { /* electing */ }
    await sleep(250);
  }
  throw new Error('nobody holds the lease');
}

/** The host whose nats-server leads the log's raft group ('' while it elects). */
async function logLeader(nc: NatsConnection, stream = STREAM): Promise<string> {
  try { return (await (await streamApi(nc, 1000)).streams.info(stream)).cluster?.leader ?? ''; } catch { return ''; }
}

/** Connected through every server but host `but`'s. */
function dial(f: Fleet, but: string): Promise<NatsConnection> {
  const urls = f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== but).join(',');
  return connect({ ...connectOptions(readCreds(f.env.SWARMLITE_CREDS), urls), maxReconnectAttempts: -1, pingInterval: 1000, maxPingOut: 2 });
}

const hostOf = (f: Fleet, node: string) => `h${node.slice(f.prefix.length + 1)}`;

async function hostRound(f: Fleet, n: number): Promise<{ downMs: number; movedMs: number; victim: string; ledLog: boolean; ledLease: boolean }> {
  const nc = await dial(f, '');
  const leader = await leaderHost(nc);
  // a host that leads no raft group the controller needs at once (the log's, the lease's) when
  // there is one: a cut of such a host waits out nats-server's 4-9 s election first (printed)
  const groups = async () => ({ log: await logLeader(nc), lease: await logLeader(nc, `KV_${LEASE_BUCKET}`) });
  let g = await groups();
  const victim = ['h1', 'h2', 'h3'].find((h) => h !== leader && h !== g.log && h !== g.lease) ?? ['h1', 'h2', 'h3'].find((h) => h !== leader)!;
  const name = `loss${n}`;
  await f.ok(['service', 'create', '--name', name, '--replicas', '6', '--network', 'none', 'busybox', 'sleep', '100000']);
  const running = async () => (JSON.parse(await f.ok(['service', 'ps', name, '--format', 'json'])) as { node?: string; state: string; desired?: string }[])
    .filter((t) => t.state === 'running' && (t.desired ?? 'running') === 'running');
  for (let k = 0; ; k++) {
    const r = await running();
    if (r.length === 6 && new Set(r.map((t) => t.node)).size === 3) break;
    if (k > 600) throw new Error(`${name}: not 2/2/2 after 60 s`);
    await sleep(100);
  }
  g = await groups();
  const ledLog = g.log === victim, ledLease = g.lease === victim;
  // an agent whose durable consumer's raft leader is on the cut host hears nothing until that
  // group elects again (4-9 s in nats-server 2.9): which one leads each, printed with the trace
  const consumers: Record<string, string> = {};
  for (let i = 1; i <= f.hosts; i++) {
    consumers[`h${i}`] = await streamApi(nc, 1000).then((j) => j.consumers.info(STREAM, `agent-${f.node(i)}`)).then((ci) => ci.cluster?.leader ?? '?', () => '?');
  }
  await nc.close();
  const env = { ...f.env, SWARMLITE_NATS: f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== victim).join(',') };
  // asked through the other hosts' servers, as a client of a cluster with one server gone would
  const ask = async (args: string[]) => { const r = await runTsctl(args, { env }); if (r.code) throw new Error(r.stderr); return r.stdout; };
  const t0 = Date.now();
  f.partition(victim);
  let downMs = 0, movedMs = 0;
  while (!downMs || !movedMs) {
    if (Date.now() - t0 > 120_000) throw new Error(`host round: down ${downMs} ms, moved ${movedMs} ms after 120 s`);
    try {
      if (!downMs && (JSON.parse(await ask(['node', 'ls', '--format', 'json'])) as { id: string; state?: string }[]).some((x) => hostOf(f, x.id) === victim && x.state === 'down')) downMs = Date.now() - t0;
      if (!movedMs) {
        const r = (JSON.parse(await ask(['service', 'ps', name, '--format', 'json'])) as { node?: string; state: string; desired?: string }[])
          .filter((t) => t.state === 'running' && (t.desired ?? 'running') === 'running' && t.node && hostOf(f, t.node) !== victim);
        if (r.length === 6) movedMs = Date.now() - t0;
      }
    } catch { /* an answer lost to the cut: ask again */ }
    await sleep(50);
  }
  // the figures from the log's own clock (the controller's and agents' ts, one machine): a
  // polled tsctl answers seconds late at load 20. The polls above only say when it is over.
  const ev = (await ask(['events', '--since', new Date(t0 - 1000).toISOString(), '--format', 'json'])).split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; ts: number; src: string; entity: string });
  const polled = { downMs, movedMs };
  const down = ev.find((e) => e.type === 'NodeDown' && hostOf(f, e.entity) === victim);
  const asked = new Set(ev.filter((e) => e.type === 'ContainerRequested' && e.ts >= t0).map((e) => e.entity));
  const started = ev.filter((e) => e.type === 'ContainerStarted' && asked.has(e.entity));
  if (down && started.length === asked.size && asked.size > 0) { downMs = down.ts - t0; movedMs = Math.max(...started.map((e) => e.ts)) - t0; }
  else console.log(`  (figures polled: the log shows ${down ? '' : 'no NodeDown, '}${started.length}/${asked.size} replacements started)`);
  // where the time went: each event of the move, from the cut
  if (process.env.FLEET_LOSS_TRACE) {
    console.log(`  polled: NodeDown ${polled.downMs} ms, all running ${polled.movedMs} ms; agents' consumers led by ${JSON.stringify(consumers)}`);
    for (const e of ev) if (/NodeDown|NodeReady|Container(Requested|RemoveRequested|Started|Created|Removed|Failed)|Claimed|ServiceTaskPending/.test(e.type)) console.log(`  +${e.ts - t0} ms ${e.type} ${e.src} ${e.entity.slice(0, 12)}`);
  }
  f.heal(victim);
  // the healed host's server rejoins its cluster for a while: a client dialling it meanwhile finds no controller
  for (let k = 0; ; k++) {
    await sleep(2000);
    const r = await runTsctl(['service', 'rm', name], { env });
    if (r.code === 0) break;
    if (k === 30) throw new Error(`service rm ${name}: ${r.stderr.trim()}`);
  }
  await sleep(5000);
  return { downMs, movedMs, victim, ledLog, ledLease };
}

async function serverRound(f: Fleet, n: number, worst = true): Promise<{ gapMs: number; acked: number; lost: number; victim: string; writes: number; ledLog: boolean }> {
  const nc0 = await dial(f, '');
  const leader = await leaderHost(nc0);
  // the worst case a user can meet: the server leading the log's raft group (the leader keeps it
  // off its own host), so the stream elects a new leader before it takes a write again
  const log = await logLeader(nc0);
  await nc0.close();
  // `worst` false: a server that leads neither the log nor serves the leader (the common case)
  const victim = worst && log && log !== leader ? log : ['h1', 'h2', 'h3'].find((h) => h !== leader && (worst || h !== log))!;
  const ledLog = victim === log;
  const nc = await dial(f, victim);
  const node = f.node(leader === 'h1' ? 1 : Number(leader.slice(1)));
  const key = `loss${n}`;
  const acked: number[] = [];
  let lastOk = Date.now(), gapMs = 0, stop = false, i = 0, killedAt = 0;
  const writer = (async () => {
    while (!stop) {
      const v = ++i;
      try {
        await call(nc, `${subjects.api}.admin`, controllerApi.nodeUpdate, { node, labelAdd: [`${key}=${v}`] }, 5000);
        acked.push(v);
        const now = Date.now();
        if (killedAt && now - lastOk > gapMs) gapMs = now - lastOk;
        lastOk = now;
      } catch { await sleep(20); }
    }
  })();
  await sleep(3000);
  killedAt = Date.now();
  f.kill(victim, 'nats');
  // until writes are answered again for 3 s (or 60 s: unavailable all along)
  while (Date.now() - killedAt < 60_000 && !(lastOk > killedAt && acked.length && Date.now() - lastOk < 500 && Date.now() - killedAt > gapMs + 3000)) await sleep(100);
  const stopAt = Date.now();
  stop = true;
  await writer;
  // no write answered since some time before the stop: unavailable up to it at least
  gapMs = Math.max(gapMs, stopAt - lastOk);
  await nc.close();
  f.revive(victim, 'nats');
  await sleep(10_000);
  // every answered write's event, read back from the log
  const seen = new Set<number>();
  const ev = await f.ok(['events', '--filter', 'type=NodeUpdated', '--format', 'json']);
  for (const l of ev.split('\n')) {
    if (!l) continue;
    const e = JSON.parse(l) as { data?: { labelAdd?: Record<string, string> } };
    const v = e.data?.labelAdd?.[key];
    if (v !== undefined) seen.add(Number(v));
  }
  return { gapMs, acked: acked.length, lost: acked.filter((v) => !seen.has(v)).length, victim, writes: i, ledLog };
}

async function main(): Promise<void> {
  const f = await Fleet.up(3);
  try {
    await f.importBusybox();
    await sleep(5000);
    if (MODE === 'host' || MODE === 'both') {
      const rs = [];
      for (let k = 0; k < ROUNDS; k++) {
        const r = await hostRound(f, k);
        console.log(`host loss #${k + 1}: ${r.victim} cut off${r.ledLog || r.ledLease ? ` (it led the ${[r.ledLog ? 'log\'s' : '', r.ledLease ? 'lease\'s' : ''].filter(Boolean).join(' and ')} raft group)` : ''}: NodeDown ${r.downMs} ms, all 6 tasks running on the other hosts ${r.movedMs} ms (${r.movedMs - r.downMs} ms after the NodeDown)`);
        rs.push(r);
      }
      console.log(`host loss: median of ${rs.length}: NodeDown ${median(rs.map((r) => r.downMs))} ms (goal <= 3000), tasks elsewhere ${median(rs.map((r) => r.movedMs - r.downMs))} ms after it (goal <= 5000)`);
    }
    if (MODE === 'server' || MODE === 'both' || MODE === 'server-follower') {
      const rs = [];
      for (let k = 0; k < ROUNDS; k++) {
        const r = await serverRound(f, k, MODE !== 'server-follower');
        console.log(`server loss #${k + 1}: ${r.victim}'s nats-server killed${r.ledLog ? ' (it led the log\'s raft group)' : ''}: longest time without an answered write ${r.gapMs} ms; ${r.acked} of ${r.writes} writes answered, ${r.lost} answered ones missing from the log`);
        rs.push(r);
      }
      console.log(`server loss: median of ${rs.length}: unavailable ${median(rs.map((r) => r.gapMs))} ms (goal <= 2000), answered writes lost ${rs.reduce((s, r) => s + r.lost, 0)} (goal 0)`);
    }
  } finally {
    // FLEET_LOSS_TRACE=DIR keeps every process's log there
    const keep = process.env.FLEET_LOSS_TRACE;
    if (keep && keep !== '1') { mkdirSync(keep, { recursive: true }); cpSync(f.dir, join(keep, f.prefix), { recursive: true, filter: (p) => !/\/(images|containers|layers|trust|run|rootfs|snapshots|nats)(\/|$)/.test(p.slice(f.dir.length)) }); }
    f.down();
  }
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
