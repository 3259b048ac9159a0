// What losing a host or a nats-server costs (issue 11's reach), on a simulated fleet (ops/fleet,
// 3 hosts, a controller, an agent and a nats-server on each). Not a test: it prints figures.
// Every round is labelled by what its victim's server led just before the loss (the raft groups
// of the streams, EVENTS' consumers, 'meta'), never the controller's own host:
// - [leader] rounds: the victim leads the log's (EVENTS) raft group. nats-server (2.9 and 2.10
//   measured alike) elects a new leader after a fixed 4-9 s (raft.go): out of reach of the 2 s
//   goal, printed for the record.
// - [follower] rounds: the victim leads neither the log's nor the lease's group (the write
//   path's: WRITE_GROUPS), the lowest such host; when it leads one, that group is stepped down
//   first (the output says so). The controller keeps both on one server (controller/lease.ts
//   leaderMoves), so such a host exists once it has looked.
// - host: a service of 6 replicas runs 2/2/2; the victim is cut off (ops/fleet partition). Timed
//   from the cut: its NodeDown in the view (goal <= 3 s, the default silence), and all 6 tasks
//   running on the other hosts (goal <= 5 s after the NodeDown), both read from the events' own
//   timestamps (NodeDown, the replacements' ContainerStarted), not from polls.
// - server: a writer makes one API write (a node label, appended by the controller) after
//   another through the other servers; the victim's nats-server is killed. Printed: the longest
//   time without an answered write after the kill (goal <= 2 s), whether every answered write's
//   event is in the log afterwards (goal: none lost), and each write that failed or took > 250 ms.
//   Each server's copy of the log is read on its own: a write is lost from the log when a
//   majority of the copies lack it; one copy lacking it (nats-server 2.9.10 can leave a server
//   that rejoins with one event missing and another twice, test/bench/store-diff.ts shows it in
//   the kept stores) is printed apart, with what the read through 'tsctl events' missed (its
//   consumer reads the copy of the server nats-server placed it on).
//   FLEET_LOSS_KEEP_STORE=1 (with FLEET_LOSS_TRACE=DIR) keeps the servers' stores too.
//   node dist/test/bench/fleet-loss.js [ROUNDS=2] [host|server|both|host-follower|server-follower]
//   (ROUNDS of each kind; the -follower modes only follower rounds)
//   FLEET_LOSS_TRACE=1 prints each event of a host round's move and, for a server round, every
//   process's log lines from the kill on; FLEET_LOSS_TRACE=DIR also keeps every process's log
//   under DIR. FLEET_LOSS_PUT=GROUP,... (e.g. KV_swarmlite-leader, meta) steps those groups onto
//   the victim first: what a follower round costs when its server leads them too.
//   Every wait is bounded and says what it waited for; a round past FLEET_LOSS_ROUND_S (600)
//   prints what it was waiting for, and the fleet goes down (on SIGINT/SIGTERM too).
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AckPolicy, connect, DeliverPolicy, nanos, type NatsConnection } from 'nats';
import { connectOptions, readCreds } from '../../shared/nats/trust.js';
import { call } from '../../shared/nats/rpc.js';
import { controllerApi } from '../../shared/api/controller.js';
import { STREAM, subjects } from '../../shared/subjects.js';
import { decodeEvent } from '../../shared/codec.js';
import { LEASE_BUCKET, LEASE_KEY, streamApi } from '../../controller/lease.js';
import { Fleet, sleep } from '../helpers/fleet.js';
import { runTsctl } from '../helpers/cluster.js';

const ROUNDS = Number(process.argv[2] ?? 2);
const MODE = process.argv[3] ?? 'both';
/** The longest a round may take (FLEET_LOSS_ROUND_S, 600 by default): past it the bench says what the round was doing, downs its fleet and exits 1. */
const ROUND_MS = Number(process.env.FLEET_LOSS_ROUND_S ?? 600) * 1000;

/** What the bench waits for now: a round past ROUND_MS names it (a run once sat 14 minutes with no output). */
let waiting = '';
const step = (what: string) => { waiting = what; };

/**
 * `p`, or an error saying in one line what was waited for once `ms` passed. Every wait of the
 * bench is one of these or a loop bounded by time: nats.js retries some things without end (an
 * ordered consumer's consume re-creates its consumer until it exists, with no deadline).
 */
function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`fleet-loss: waited ${ms / 1000} s for ${typeof what === 'string' ? what : what()}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN; };

async function leaderHost(nc: NatsConnection): Promise<string> {
  step('the lease holder');
  for (const t0 = Date.now(); Date.now() - t0 < 60_000;) {
    try {
      const jsm = await streamApi(nc, 1000);
      const m = await jsm.streams.getMessage(`KV_${LEASE_BUCKET}`, { last_by_subj: `$KV.${LEASE_BUCKET}.${LEASE_KEY}` });
      const h = (JSON.parse(new TextDecoder().decode(m.data)) as { host: string }).host;
      if (h) return h;
    } catch { /* electing */ }
    await sleep(250);
  }
  throw new Error('fleet-loss: nobody held the lease for 60 s');
}

/** The host whose nats-server leads the log's raft group ('' while it elects). */
async function logLeader(nc: NatsConnection, stream = STREAM): Promise<string> {
  try { return (await (await streamApi(nc, 1000)).streams.info(stream)).cluster?.leader ?? ''; } catch { return ''; }
}

/** Connected through every server but host `but`'s. */
function dial(f: Fleet, but: string): Promise<NatsConnection> {
  const urls = f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== but).join(',');
  return within(connect({ ...connectOptions(readCreds(f.env.SWARMLITE_CREDS), urls), maxReconnectAttempts: -1, pingInterval: 1000, maxPingOut: 2 }), 30_000, `a connection to ${urls}`);
}

/** Closes a connection (a close that does not end in 5 s is left behind: the bench goes on). */
const hangUp = (nc: NatsConnection) => within(nc.close(), 5000, 'a connection to close').catch((err: Error) => console.log(`  (${err.message})`));

const hostOf = (f: Fleet, node: string) => `h${node.slice(f.prefix.length + 1)}`;

async function hostRound(f: Fleet, n: number, kind: Kind): Promise<{ downMs: number; movedMs: number; victim: string; led: string[]; moved: string[]; before: string[]; elected: string[] }> {
  step('a connection for the setup');
  const nc = await dial(f, '');
  await jetStreamAnswers(nc);
  const name = `loss${n}`;
  step(`service create ${name}`);
  await createService(f, name);
  step(`${name} running 2/2/2`);
  const running = async () => (JSON.parse(await f.ok(['service', 'ps', name, '--format', 'json'])) as { node?: string; state: string; desired?: string }[])
    .filter((t) => t.state === 'running' && (t.desired ?? 'running') === 'running');
  for (const t0 = Date.now(); ;) {
    const r = await running();
    if (r.length === 6 && new Set(r.map((t) => t.node)).size === 3) break;
    if (Date.now() - t0 > 60_000) throw new Error(`${name}: not 2/2/2 after 60 s`);
    await sleep(100);
  }
  // 'follower': a host whose server leads no group the controller needs at once (the log's, the
  // lease's); 'leader': the log's leader's host, whose cut waits out nats-server's 4-9 s election
  const { victim, led, moved } = await pickAndArrange(f, nc, kind);
  const looked = Date.now();
  // an agent whose durable consumer's raft leader is on the cut host hears nothing until that
  // group elects again (4-9 s in nats-server 2.9): which one leads each, printed with the trace
  const consumers: Record<string, string> = {};
  step('the agents\' consumers\' leaders');
  for (let i = 1; i <= f.hosts; i++) {
    consumers[`h${i}`] = await streamApi(nc, 1000).then((j) => j.consumers.info(STREAM, `agent-${f.node(i)}`)).then((ci) => ci.cluster?.leader ?? '?', () => '?');
  }
  await hangUp(nc);
  const env = { ...f.env, SWARMLITE_NATS: f.env.SWARMLITE_NATS.split(',').filter((_, i) => `h${i + 1}` !== victim).join(',') };
  // asked through the other hosts' servers, as a client of a cluster with one server gone would
  const ask = async (args: string[]) => { const r = await runTsctl(args, { env }); if (r.code) throw new Error(r.stderr); return r.stdout; };
  const t0 = Date.now();
  step(`${victim}'s NodeDown and ${name}'s tasks elsewhere`);
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
  step('the events since the cut');
  const ev = (await ask(['events', '--since', new Date(t0 - 1000).toISOString(), '--format', 'json'])).split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { type: string; ts: number; src: string; entity: string; data?: { lastSeen?: number } });
  const polled = { downMs, movedMs };
  const down = ev.find((e) => e.type === 'NodeDown' && hostOf(f, e.entity) === victim);
  const asked = new Set(ev.filter((e) => e.type === 'ContainerRequested' && e.ts >= t0).map((e) => e.entity));
  const started = ev.filter((e) => e.type === 'ContainerStarted' && asked.has(e.entity));
  if (down && started.length === asked.size && asked.size > 0) { downMs = down.ts - t0; movedMs = Math.max(...started.map((e) => e.ts)) - t0; }
  else console.log(`  (figures polled: the log shows ${down ? '' : 'no NodeDown, '}${started.length}/${asked.size} replacements started)`);
  // where the time went: each event of the move, from the cut
  if (process.env.FLEET_LOSS_TRACE) {
    console.log(`  polled: NodeDown ${polled.downMs} ms, all running ${polled.movedMs} ms; agents' consumers led by ${JSON.stringify(consumers)}`);
    for (const e of ev) if (/NodeDown|NodeReady|Container(Requested|RemoveRequested|Started|Created|Removed|Failed)|Claimed|ServiceTaskPending/.test(e.type)) console.log(`  +${e.ts - t0} ms ${e.type} ${e.src} ${e.entity.slice(0, 12)}${e.data?.lastSeen ? ` (last heard +${e.data.lastSeen - t0} ms)` : ''}`);
    // every process's lines from the cut on (connections lost and back, leases, verdicts)
    for (const l of traceLogs(f, t0, t0 + Math.max(downMs, movedMs) + 1000)) console.log(l);
  }
  // what elected a leader between the last look and the cut (the controller moves the write
  // path's leaders too), and after the cut: the groups the victim did lead when it went
  const before = elections(f, looked, t0);
  // not one the controller itself stepped down after the cut (a step-down elects at once)
  const stepped = controllerMoves(f, t0, t0 + downMs + 1000);
  const elected = elections(f, t0, t0 + downMs + 1000).filter((e) => !stepped.has(e.split(' ')[0]!));
  f.heal(victim);
  step(`service rm ${name} after ${victim}'s heal`);
  // the healed host's server rejoins its cluster for a while: a client dialling it meanwhile finds no controller
  for (let k = 0, t1 = Date.now(); ; k++) {
    await sleep(2000);
    const r = await runTsctl(['service', 'rm', name], { env, timeout: 20_000 });
    if (r.code === 0) break;
    // a retry after an answer lost to the healing server: the first removal may have gone through
    if (k > 0 && /no such service/.test(r.stderr)) break;
    if (Date.now() - t1 > 120_000) throw new Error(`service rm ${name}: not done 120 s after the heal: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  await sleep(5000);
  return { downMs, movedMs, victim, led, moved, before, elected };
}

/**
 * Who leads each raft group a round looks at: the streams (EVENTS, the buckets) and every
 * consumer of EVENTS. Each asked of the group itself (an info is answered by its leader): the
 * list's leaders, which the meta leader gathers, were stale (a round labelled "no group" saw the
 * lease's stream elect a new leader after its kill).
 */
function groupLeaders(nc: NatsConnection): Promise<Record<string, string>> {
  return within(groupLeadersOf(nc), 20_000, 'who leads each raft group');
}
async function groupLeadersOf(nc: NatsConnection): Promise<Record<string, string>> {
  const jsm = await streamApi(nc, 2000);
  const out: Record<string, string> = {};
  for (const name of await jsm.streams.names().next()) {
    out[name] = await jsm.streams.info(name).then((si) => si.cluster?.leader ?? '', () => '');
    if (name !== STREAM) continue;
    for (const c of await jsm.consumers.list(STREAM).next()) out[`${STREAM}>${c.name}`] = await jsm.consumers.info(STREAM, c.name).then((ci) => ci.cluster?.leader ?? '', () => '');
  }
  return out;
}

/** The meta leader, as the fleet's servers last logged it (no client API says). */
function metaLeader(f: Fleet): string {
  let best = '', at = '';
  for (const h of ['h1', 'h2', 'h3']) {
    let log = '';
    try { log = readFileSync(join(f.dir, h, 'logs', 'nats.log'), 'utf8'); } catch { continue; }
    for (const l of log.split('\n')) {
      const m = /^\[\d+\] (\S+ \S+) \[INF\] (?:JetStream cluster new metadata leader: (\w+)\/|(Self) is new JetStream cluster metadata leader)/.exec(l);
      if (m && m[1]! >= at) { at = m[1]!; best = m[2] ?? h; }
    }
  }
  return best;
}

/** The step-down request of a group: a stream (EVENTS, KV_x, OBJ_x), a consumer of EVENTS ('EVENTS>name') or 'meta'. */
const stepDown = (g: string) => (g === 'meta' ? '$JS.API.META.LEADER.STEPDOWN' : g.includes('>') ? `$JS.API.CONSUMER.LEADER.STEPDOWN.${g.replace('>', '.')}` : `$JS.API.STREAM.LEADER.STEPDOWN.${g}`);

/** The groups a write (an API call the controller answers by appending and folding) needs: the log's and the lease's. */
const WRITE_GROUPS = [STREAM, `KV_${LEASE_BUCKET}`];

type Kind = 'leader' | 'follower';

/**
 * The host a round takes down, never the controller's (`leader`): 'leader', the one whose server
 * leads the log's raft group (stepped off the controller's host when it is there); 'follower', the lowest
 * other one (arrange steps the write path's groups off it).
 */
async function pickVictim(nc: NatsConnection, leader: string, kind: Kind, f?: Fleet): Promise<string> {
  const others = ['h1', 'h2', 'h3'].filter((h) => h !== leader);
  // nor the server the controller is connected to, when it is not its own host's (its own died
  // in an earlier round; nats.js stays where it reconnected): requests on it wait their timeouts
  const serving = f ? servingServer(f, leader) : leader;
  if (kind === 'follower') return others.find((h) => h !== serving) ?? others[0]!;
  // a leader round's neither: the controller keeps the log's leader off the server it is
  // connected to as well as off its host (lease.ts keepLeadersAway), and moved it away from a
  // victim there as fast as arrange moved it on ("h3 keeps leading and is not given EVENTS")
  const allowed = others.filter((h) => h !== serving);
  step(`the log's leader on ${allowed.join(' or ')}`);
  for (let k = 0; ; k++) {
    const log = await logLeader(nc);
    if (allowed.includes(log)) return log;
    if (k === 40) throw new Error(`the log stays led from ${log || 'nowhere'}`);
    // led from the controller's host or server (its own step-downs start 30 s into a term): moved now
    if (log) await nc.request(stepDown(STREAM), new Uint8Array(0), { timeout: 2000 }).catch(() => undefined);
    await sleep(700);
  }
}

/**
 * Just before the loss (the controller moves the log's and the lease's leaders every 10 s,
 * maybe onto the victim): a follower round steps WRITE_GROUPS off the victim, and
 * FLEET_LOSS_PUT's groups (comma-separated, as groupLeaders names them, or 'meta') onto it,
 * until both hold. Returns what the victim leads then and what was stepped down.
 */
async function arrange(f: Fleet, nc: NatsConnection, victim: string, kind: Kind): Promise<{ led: string[]; moved: string[] }> {
  const put = (process.env.FLEET_LOSS_PUT ?? '').split(',').filter(Boolean);
  const moved: string[] = [];
  step(`the raft groups arranged around ${victim}`);
  for (let k = 0, t0 = Date.now(); ; k++) {
    const g = await groupLeaders(nc).catch(() => ({} as Record<string, string>));
    const meta = metaLeader(f);
    const off = kind === 'follower' ? WRITE_GROUPS.filter((s) => g[s] === victim && !put.includes(s)) : [];
    // a leader round's victim still leads the log (the controller may have moved it meanwhile)
    const on = [...put, ...(kind === 'leader' ? [STREAM] : [])].filter((s) => (s === 'meta' ? meta : g[s]) !== victim);
    if (!off.length && !on.length) {
      const led = Object.entries(g).filter(([, h]) => h === victim).map(([s]) => s);
      return { led: meta === victim ? [...led, 'meta'] : led, moved };
    }
    if (k === 40 || Date.now() - t0 > 60_000) throw new Error(`${victim} keeps leading ${off.join(', ')}${on.length ? ` and is not given ${on.join(', ')}` : ''}`);
    for (const s of [...off, ...on]) {
      await nc.request(stepDown(s), new Uint8Array(0), { timeout: 2000 }).catch(() => undefined);
      if (!moved.includes(s)) moved.push(s);
    }
    await sleep(700);
  }
}

/**
 * pickVictim, then arrange, from a fresh look at who holds the lease each time: a takeover
 * between the pick and the arrangement (a cut's aftermath) made the victim the controller's own
 * host or server, whose groups the controller then kept moving off it while arrange moved them on.
 */
async function pickAndArrange(f: Fleet, nc: NatsConnection, kind: Kind): Promise<{ victim: string; led: string[]; moved: string[] }> {
  for (let k = 1; ; k++) {
    const leader = await leaderHost(nc);
    const victim = await pickVictim(nc, leader, kind, f);
    try {
      return { victim, ...await arrange(f, nc, victim, kind) };
    } catch (err) {
      if (k === 3) throw err;
      console.log(`  (setup: ${(err as Error).message}; the victim picked again)`);
    }
  }
}

/**
 * Until the JetStream API answers (a meta leader): after a heal or a revive the cluster may have
 * none for seconds, and a `service create` sent then timed out and stopped the bench.
 */
async function jetStreamAnswers(nc: NatsConnection, ms = 60_000): Promise<void> {
  for (const t0 = Date.now(); ; await sleep(250)) {
    try { await (await streamApi(nc, 1000)).getAccountInfo(); return; } catch (err) {
      if (Date.now() - t0 > ms) throw new Error(`JetStream did not answer for ${ms} ms: ${(err as Error).message}`);
    }
  }
}

/** A round's service, asked again after an answer lost to an election (the first may have gone through: then it is there). */
async function createService(f: Fleet, name: string): Promise<void> {
  for (let k = 1; ; k++) {
    const r = await f.tsctl(['service', 'create', '--name', name, '--replicas', '6', '--network', 'none', 'busybox', 'sleep', '100000']);
    if (r.code === 0 || (k > 1 && /already exists/.test(r.stderr))) return;
    if (k === 5) throw new Error(`service create ${name}: ${r.stderr.trim()}`);
    await sleep(2000);
  }
}

/** The server the controller of host `h` is connected to, from its log's last "connected to" / "on X again" line. */
function servingServer(f: Fleet, h: string): string {
  let log = '';
  try { log = readFileSync(join(f.dir, h, 'logs', 'controller.log'), 'utf8'); } catch { return h; }
  const all = [...log.matchAll(/controller: \S+ (?:connected to|on) (h\d+)/g)];
  return all.length ? all[all.length - 1]![1]! : h;
}

/** How a round's victim is described: what it led, what was stepped down first. */
const described = (r: { led: string[]; moved: string[] }) =>
  `leading ${r.led.length ? r.led.join(', ') : 'no group'}${r.moved.length ? ` (${r.moved.join(', ')} stepped down first)` : ''}`;

interface ServerRound { gapMs: number; acked: number; lost: number; read: number; oneCopy: string; victim: string; writes: number; led: string[]; moved: string[]; slow: string[]; elected: string[] }

/**
 * One nats-server killed while a writer writes. `kind` 'leader': the victim leads the log's raft
 * group; 'follower': it leads none of WRITE_GROUPS (stepped off it first when it does). Never the
 * controller's own host's server. The lowest such host, so rounds are alike.
 */
async function serverRound(f: Fleet, n: number, kind: Kind): Promise<ServerRound> {
  step('a connection for the setup');
  const nc0 = await dial(f, '');
  await jetStreamAnswers(nc0);
  // arranged before the writer starts: a step-down of the log's group under a write leaves its
  // append unacked for the controller's 5 s ack timeout (a round's stall that the kill did not cause)
  const picked = await pickAndArrange(f, nc0, kind);
  const { victim } = picked;
  let { led, moved } = picked;
  const leader = await leaderHost(nc0);
  const serving = servingServer(f, leader);
  const nc = await dial(f, victim);
  const node = f.node(Number(leader.slice(1)));
  const key = `loss${n}`;
  const acked: number[] = [];
  const calls: { v: number; at: number; ms: number; err?: string }[] = [];
  let lastOk = Date.now(), gapMs = 0, stop = false, i = 0, killedAt = 0, lastErr = '';
  const writer = (async () => {
    while (!stop) {
      const v = ++i, t = Date.now();
      try {
        await call(nc, `${subjects.api}.admin`, controllerApi.nodeUpdate, { node, labelAdd: [`${key}=${v}`] }, 5000);
        acked.push(v);
        const now = Date.now();
        if (killedAt) calls.push({ v, at: t - killedAt, ms: now - t });
        if (killedAt && now - lastOk > gapMs) gapMs = now - lastOk;
        lastOk = now;
      } catch (err) {
        lastErr = (err as Error).message.slice(0, 120);
        if (killedAt) calls.push({ v, at: t - killedAt, ms: Date.now() - t, err: lastErr });
        await sleep(20);
      }
    }
  })();
  step('writes answered before the kill');
  await sleep(3000);
  // again just before the kill (the controller moves leaders too); after a step-down, until writes flow again
  // (bounded by time, not tries: a controller's restart or a meta election before the kill takes seconds)
  for (const t0 = Date.now(); ;) {
    const again = await arrange(f, nc0, victim, kind);
    led = again.led;
    moved = [...new Set([...moved, ...again.moved])];
    // the write path's groups read last, right before the kill: the controller moves them too
    const late = kind === 'follower' && (await Promise.all(WRITE_GROUPS.map((s) => logLeader(nc0, s)))).some((h) => h === victim);
    if (!late && !again.moved.length && Date.now() - lastOk < 300) break;
    if (Date.now() - t0 > 90_000) throw new Error(`no write answered for ${Date.now() - lastOk} ms before the kill${lastErr ? ` (the last failed: ${lastErr})` : ''}${late || again.moved.length ? `; the write path's groups still moving (${again.moved.join(', ') || 'one led from the victim'})` : ''}`);
    await sleep(200);
  }
  await hangUp(nc0);
  killedAt = Date.now();
  step(`writes answered again after ${victim}'s nats-server was killed`);
  f.kill(victim, 'nats');
  // until writes are answered again for 3 s (or 60 s: unavailable all along)
  while (Date.now() - killedAt < 60_000 && !(lastOk > killedAt && acked.length && Date.now() - lastOk < 500 && Date.now() - killedAt > gapMs + 3000)) await sleep(100);
  const stopAt = Date.now();
  stop = true;
  // its last call ends within its 5 s timeout
  await within(writer, 10_000, 'the writer\'s last write');
  // no write answered since some time before the stop: unavailable up to it at least
  gapMs = Math.max(gapMs, stopAt - lastOk);
  await hangUp(nc);
  // each write that failed or took > 250 ms; a run of quick failures alike in one line
  const slow: string[] = [];
  for (let k = 0; k < calls.length; k++) {
    const c = calls[k]!;
    if (!c.err && c.ms <= 250) continue;
    let j = k;
    while (c.err && c.ms <= 250 && j + 1 < calls.length && calls[j + 1]!.err === c.err && calls[j + 1]!.ms <= 250) j++;
    slow.push(j > k ? `  writes #${c.v}-#${calls[j]!.v} sent from +${c.at} to +${calls[j]!.at} ms: each failed at once (${c.err})`
      : `  write #${c.v} sent at +${c.at} ms: ${c.err ? `failed after ${c.ms} ms (${c.err})` : `answered in ${c.ms} ms`}`);
    k = j;
  }
  if (process.env.FLEET_LOSS_TRACE) slow.push(...traceLogs(f, killedAt, killedAt + gapMs + 1000));
  const elected = elections(f, killedAt, killedAt + gapMs + 1000);
  f.revive(victim, 'nats');
  step(`the log read back after ${victim}'s revival`);
  await sleep(10_000);
  // every answered write's event, read back from the log
  const seen = new Set<number>();
  const where = new Map<number, string>();
  const ev = await f.ok(['events', '--filter', 'type=NodeUpdated', '--format', 'json']);
  for (const l of ev.split('\n')) {
    if (!l) continue;
    const e = JSON.parse(l) as { seq: number; srcSeq?: number; ts: number; data?: { labelAdd?: Record<string, string> } };
    const v = e.data?.labelAdd?.[key];
    if (v !== undefined) { seen.add(Number(v)); where.set(Number(v), `#${e.seq} (controller#${e.srcSeq}, ${new Date(e.ts).toISOString()})`); }
  }
  const lost = acked.filter((v) => !seen.has(v));
  // which answered write is missing, and what the log holds on either side of it
  for (const v of lost) {
    const c = calls.find((x) => x.v === v);
    slow.push(`  LOST: write #${v}${c ? ` sent at +${c.at} ms, answered in ${c.ms} ms` : ' (answered before the kill)'}; #${v - 1} at ${where.get(v - 1) ?? 'nowhere'}, #${v + 1} at ${where.get(v + 1) ?? 'nowhere'}`);
  }
  // each lost write looked for again, message by message from the stream's leader (a get, not
  // the consumer 'tsctl events' reads through): whether the log lacks it or the read missed it
  if (lost.length) {
    const nc1 = await dial(f, '');
    try {
      const jsm = await streamApi(nc1, 3000);
      const si = await jsm.streams.info(STREAM);
      const lo = Math.min(...lost.map((v) => Number(/#(\d+)/.exec(where.get(v - 1) ?? '#1')![1])));
      slow.push(`  the stream: #${si.state.first_seq}..#${si.state.last_seq}, ${si.state.messages} messages; 'events' read ${ev.split('\n').filter(Boolean).length} NodeUpdated; looking from #${lo}`);
      for (let q = lo, t1 = Date.now(); q <= si.state.last_seq && q < lo + 5000; q++) {
        if (Date.now() - t1 > 60_000) { slow.push(`  (looked up to #${q - 1} in 60 s, no further)`); break; }
        const m = await jsm.streams.getMessage(STREAM, { seq: q }).catch((err: Error) => err);
        if (m instanceof Error) { slow.push(`  #${q}: ${m.message}`); continue; }
        let label: string | undefined;
        try { label = (decodeEvent(m.data).data as { labelAdd?: Record<string, string> }).labelAdd?.[key]; } catch { /* not an event */ }
        const hit = lost.find((v) => label === String(v));
        if (hit !== undefined) slow.push(`  #${q} holds lost write #${hit} (${m.subject})`);
      }
    } finally { await hangUp(nc1); }
  }
  // 'events' reads through one consumer, which nats-server places on one of the stream's
  // servers: it reads that server's copy. Each server's copy read the same way, on its own.
  // A write is lost from the log when a majority of the copies lack it (the quorum that acked
  // it did not keep it); one copy lacking it is that server's copy gone wrong (a reader served
  // there misses it), which the read above sees only when its consumer was placed there.
  const copies: string[] = [];
  const lacking = new Map<number, string[]>();
  let unread = 0;
  const nc2 = await dial(f, '');
  try {
    for (let h = 1; h <= f.hosts; h++) {
      step(`h${h}'s copy of the log`);
      const got = await copyOf(nc2, `h${h}`, subjects.cluster(node), key).catch((err: Error) => err);
      if (got instanceof Error) { unread++; copies.push(`h${h} unread (${got.message.slice(0, 80)})`); continue; }
      const miss = acked.filter((v) => !got.has(v));
      for (const v of miss) lacking.set(v, [...(lacking.get(v) ?? []), `h${h}`]);
      copies.push(`h${h} ${miss.length}${miss.length ? ` (#${miss.slice(0, 5).join(', #')})` : ''}`);
    }
  } finally { await hangUp(nc2); }
  slow.unshift(`  answered writes missing from each server's copy of the log: ${copies.join(', ')}`);
  const fromLog = [...lacking.values()].filter((hs) => hs.length * 2 > f.hosts).length;
  const oneCopy = [...lacking.entries()].filter(([, hs]) => hs.length * 2 <= f.hosts).map(([v, hs]) => `#${v} on ${hs.join('+')}`).join(', ');
  if (serving === victim) led.push('the controller\'s connection');
  // a copy that could not be read: the events read's figure stands
  return { gapMs, acked: acked.length, lost: unread ? lost.length : fromLog, read: lost.length, oneCopy, victim, writes: i, led, moved, slow, elected };
}

/**
 * The label values `key` on `filter` as server `server`'s copy of the log holds them: read
 * through a consumer made again until nats-server places it on that server (it places each
 * at random among the stream's servers), to its end there. The consumer is made here, not
 * nats.js's ordered one: that one's first creation, when an add fails (a timeout while the
 * revived server rejoins), is tried again up to 30 times, 15-30 s apart, with no deadline
 * (a run sat 14 minutes without output, one connection open, after its host rounds).
 */
async function copyOf(nc: NatsConnection, server: string, filter: string, key: string): Promise<Set<number>> {
  const jsm = await streamApi(nc, 2000);
  const js = nc.jetstream({ timeout: 2000 });
  let why = '';
  for (let k = 0, t0 = Date.now(); k < 40 && Date.now() - t0 < 60_000; k++) {
    const ci = await jsm.consumers.add(STREAM, { ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: filter, num_replicas: 1, mem_storage: true, inactive_threshold: nanos(60_000) })
      .catch((err: Error) => { why = err.message; return undefined; });
    if (!ci) { await sleep(500); continue; }
    const drop = () => jsm.consumers.delete(STREAM, ci.name).catch(() => undefined);
    if (ci.cluster?.leader !== server) { await drop(); continue; }
    const out = new Set<number>();
    if (ci.num_pending === 0) { await drop(); return out; }
    const msgs = await within((await js.consumers.get(STREAM, ci.name)).consume({ max_messages: 1000, expires: 2000 }), 10_000, `${server}'s copy of the log to start reading`);
    let read = 0;
    const reading = (async () => {
      for await (const m of msgs) {
        read++;
        try {
          const v = (decodeEvent(m.data).data as { labelAdd?: Record<string, string> }).labelAdd?.[key];
          if (v !== undefined) out.add(Number(v));
        } catch { /* not an event */ }
        if (m.info.pending === 0) break;
      }
    })();
    try {
      await within(reading, 30_000, () => `${server}'s copy of the log read to its end (${read} of ${ci.num_pending} read)`);
    } finally {
      msgs.stop();
      await drop();
    }
    return out;
  }
  throw new Error(`no consumer placed on ${server} in 40 tries or 60 s${why ? ` (the last add failed: ${why.slice(0, 80)})` : ''}`);
}

/** The streams the controllers' logs say they asked to step down between `from` and `to` (ms). */
function controllerMoves(f: Fleet, from: number, to: number): Set<string> {
  const out = new Set<string>();
  for (let h = 1; h <= f.hosts; h++) {
    let text = '';
    try { text = readFileSync(join(f.dir, `h${h}`, 'logs', 'controller.log'), 'utf8'); } catch { continue; }
    for (const m of text.matchAll(/controller: (\S+Z) asked (.+?) to be led from/g)) {
      const t = Date.parse(m[1]!);
      if (t >= from && t <= to) for (const g of m[2]!.split(', ')) out.add(g);
    }
  }
  return out;
}

/**
 * The groups that elected a leader between `from` and `to` (ms), from the servers' logs: what
 * the victim did lead when it went (or a step-down meanwhile). The label's check, afterwards.
 */
function elections(f: Fleet, from: number, to: number): string[] {
  const seen = new Map<string, number>();
  for (const h of ['h1', 'h2', 'h3']) {
    let text = '';
    try { text = readFileSync(join(f.dir, h, 'logs', 'nats.log'), 'utf8'); } catch { continue; }
    for (const l of text.split('\n')) {
      const m = /^\[\d+\] (\d{4})\/(\d\d)\/(\d\d) (\S+) \[INF\] (?:JetStream cluster new (?:stream|consumer) leader for '\$G > ([^']+)'|(?:Self is new JetStream cluster metadata leader|JetStream cluster new metadata leader)())/.exec(l);
      if (!m) continue;
      const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]!.slice(0, 12)}Z`);
      const g = m[5] !== undefined ? m[5].replace(' > ', '>') : 'meta';
      if (t >= from && t <= to && !seen.has(g)) seen.set(g, t - from);
    }
  }
  return [...seen].map(([g, ms]) => `${g} +${ms} ms`);
}

/** The lines of every process's log between `from` and `to` (ms) that say where time went. */
function traceLogs(f: Fleet, from: number, to: number): string[] {
  const out: [number, string][] = [];
  for (let h = 1; h <= f.hosts; h++) {
    for (const p of ['nats', 'controller', 'agent']) {
      let text = '';
      try { text = readFileSync(join(f.dir, `h${h}`, 'logs', `${p}.log`), 'utf8'); } catch { continue; }
      for (const l of text.split('\n')) {
        const m = /(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d:\d\d:\d\d\.\d{3})/.exec(l);
        if (!m) continue;
        const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}Z`);
        if (t < from - 200 || t > to) continue;
        if (p === 'nats' && !/leader|Lost|lost|error|ERR|WRN/i.test(l)) continue;
        out.push([t, `  h${h} ${p} +${t - from} ms: ${l.replace(/^\[\d+\] \S+ \S+ /, '').slice(0, 220)}`]);
      }
    }
  }
  return out.sort((a, b) => a[0] - b[0]).map(([, l]) => l);
}

async function main(): Promise<void> {
  step('ops/fleet up');
  const f = await Fleet.up(3);
  // stopped from outside (a run killed by hand or by all.sh's limit): the fleet goes with it
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { console.error(`fleet-loss: ${sig} while waiting for ${waiting}: ops/fleet down --prefix ${f.prefix}`); try { f.down(); } finally { process.exit(1); } });
  try {
    step('the busybox image imported');
    await f.importBusybox();
    await sleep(5000);
    if (MODE === 'host' || MODE === 'both' || MODE === 'host-follower') {
      const kinds: Kind[] = MODE === 'host-follower' ? ['follower'] : ['leader', 'follower'];
      const rs: { downMs: number; movedMs: number; kind: Kind }[] = [];
      for (let k = 0; k < ROUNDS * kinds.length; k++) {
        const kind0 = kinds[k % kinds.length]!;
        const r = await within(hostRound(f, k, kind0), ROUND_MS, () => `host round #${k + 1} [${kind0}] to end (it was waiting for ${waiting})`);
        // as for a server round: a write path's group that elected after the cut was led from the victim
        const kind = kind0 === 'follower' && r.elected.some((e) => WRITE_GROUPS.includes(e.split(' ')[0]!)) ? 'leader' : kind0;
        console.log(`host loss #${k + 1} [${kind}${kind !== kind0 ? ', meant as a follower round: the write path\'s groups elected after the cut' : ''}]: ${r.victim} cut off, ${described(r)}: NodeDown ${r.downMs} ms, all 6 tasks running on the other hosts ${r.movedMs} ms (${r.movedMs - r.downMs} ms after the NodeDown)`);
        console.log(`  elected between the last look at the leaders and the cut (ms after the look): ${r.before.join(', ') || 'nothing'}; after the cut: ${r.elected.join(', ') || 'nothing'}`);
        rs.push({ ...r, kind });
      }
      for (const kind of kinds) {
        const ks = rs.filter((r) => r.kind === kind);
        console.log(`host loss [${kind}]: median of ${ks.length}: NodeDown ${median(ks.map((r) => r.downMs))} ms (goal <= 3000), tasks elsewhere ${median(ks.map((r) => r.movedMs - r.downMs))} ms after it (goal <= 5000)`);
      }
    }
    if (MODE === 'server' || MODE === 'both' || MODE === 'server-follower') {
      // 'server': leader and follower rounds in turn; 'server-follower': follower rounds only
      const kinds: Kind[] = MODE === 'server-follower' ? ['follower'] : ['leader', 'follower'];
      const rs: (ServerRound & { kind: string })[] = [];
      for (let k = 0; k < ROUNDS * kinds.length; k++) {
        const kind0 = kinds[k % kinds.length]!;
        const r = await within(serverRound(f, k, kind0), ROUND_MS, () => `server round #${k + 1} [${kind0}] to end (it was waiting for ${waiting})`);
        // checked afterwards: a group of the write path that elected after the kill was led from
        // the victim after all (moved onto it after the last look): counted as a leader round
        const kind = kind0 === 'follower' && r.elected.some((e) => WRITE_GROUPS.includes(e.split(' ')[0]!)) ? 'leader' : kind0;
        console.log(`server loss #${k + 1} [${kind}${kind !== kind0 ? ', meant as a follower round: the write path\'s groups elected after the kill' : ''}]: ${r.victim}'s nats-server killed, ${described(r)}: longest time without an answered write ${r.gapMs} ms; ${r.acked} of ${r.writes} writes answered, ${r.lost} answered ones missing from the log (from a majority of its copies); ${r.oneCopy ? `missing from one server's copy: ${r.oneCopy}` : 'none missing from any copy'}; ${r.read} missing from the read through 'tsctl events'`);
        console.log(`  elected after the kill: ${r.elected.join(', ') || 'nothing'}`);
        for (const l of r.slow) console.log(l);
        rs.push({ ...r, kind });
      }
      for (const kind of kinds) {
        const ks = rs.filter((r) => r.kind === kind);
        console.log(`server loss [${kind}]: median of ${ks.length}: unavailable ${median(ks.map((r) => r.gapMs))} ms (max ${Math.max(...ks.map((r) => r.gapMs))}; goal <= 2000${kind === 'leader' ? ', out of reach: nats-server elects after 4-9 s (its raft election timeout, 2.9 and 2.10 alike)' : ''}), answered writes lost ${ks.reduce((s, r) => s + r.lost, 0)} (goal 0), missing from one server's copy ${ks.filter((r) => r.oneCopy).length ? ks.map((r) => r.oneCopy).filter(Boolean).join(', ') : 'none'}`);
      }
    }
  } finally {
    // FLEET_LOSS_TRACE=DIR keeps every process's log there
    const keep = process.env.FLEET_LOSS_TRACE;
    if (keep && keep !== '1') { mkdirSync(keep, { recursive: true }); cpSync(f.dir, join(keep, f.prefix), { recursive: true, filter: (p) => !/\/(images|containers|layers|trust|run|rootfs|snapshots|nats)(\/|$)/.test(p.slice(f.dir.length)) || (!!process.env.FLEET_LOSS_KEEP_STORE && /^\/h\d\/nats(\/|$)/.test(p.slice(f.dir.length))) }); }
    step(`ops/fleet down --prefix ${f.prefix}`);
    f.down();
  }
}

// a bound that ran out is its own one line; anything else with its stack
main().then(() => process.exit(0), (err) => { console.error(err instanceof Error && err.message.startsWith('fleet-loss: ') ? err.message : err); process.exit(1); });
