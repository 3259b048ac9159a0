// swarmlite controller: serves tsctl, appends desired events, keeps the folded view.
import { fatalLine } from '../shared/fatal.js';
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { parseRestart } from '../shared/restart.js';
import { subjects } from '../shared/subjects.js';
import { join } from 'node:path';
import { StorageType } from 'nats';
import { keepOnOwnServer } from '../shared/nats/home.js';
import { connectOptions, credsPath, identities, localNames, pruneJoinTokens, readCreds, redeemJoinToken, reloadServer, signerOf, LIVENESS, longLivedOptions, logConnection, mirrorMarker, dialLongLived } from '../shared/nats/trust.js';
import { conflict, invalid, RpcError } from '../shared/rpc.js';
import { call, TransportError } from '../shared/nats/rpc.js';
import { ensureStream, Appender, DEFAULT_LIMITS, exitForRestart, jetstreamReady, whileNoLeader } from '../shared/nats/log.js';
import { SourceChain, decodeEvent, hashBytes } from '../shared/codec.js';
import { archiveState, archiveStore, archivedFrom, sealRange, type ArchiveState } from '../shared/nats/archive.js';
import { durableOf, IMAGE_BUCKET, STREAM } from '../shared/subjects.js';
import { emptyView, own, type ClusterView } from '../shared/reducer.js';
import { THREAD_FROM_EVENTS, TRAVEL_EVERY, ViewKeeper } from './view.js';
import { ReaderThread } from './replay-reader.js';
import { TravelStore } from './travel.js';
import { writeAnchor } from '../shared/nats/anchor.js';
import { serialiser, serveApi, type ApiContext } from './api/index.js';
import { Reconciler } from './services.js';
import { DEFAULT_SILENCE_MS, Membership } from './membership.js';
import { STRATEGIES, type Strategy } from './placement.js';
import { TrustPublisher } from '../shared/nats/trust-dist.js';
import { DEFAULT_TTL_MS, becomeLeader, claim, controllerHeadInStream, fenceAnswer, highestTerm, isFenced, keepLeadersAway, lastSeqOn, LEADER_STREAMS, NoLease, takeOverHead, whileElecting } from './lease.js';
import { hostname } from 'node:os';
import { mark } from './start-trace.js';

const VERSION = '0.1.0';
const ANCHOR_EVERY_MS = 2000;
const PRUNE_EVERY_MS = 60_000;

const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.SWARMLITE_NATS ?? 'nats://127.0.0.1:4222' },
    'state-dir': { type: 'string', default: '/var/lib/swarmlite' },
    'log-max-bytes': { type: 'string' },
    creds: { type: 'string' },
    // copies of the log and of every bucket: 3 on a JetStream cluster (ops/up --cluster), 1 alone
    replicas: { type: 'string', default: process.env.SWARMLITE_REPLICAS ?? '1' },
    // how long an agent may be silent before its node is down (NodeDown), in ms
    'node-silence': { type: 'string', default: process.env.SWARMLITE_NODE_SILENCE_MS ?? String(DEFAULT_SILENCE_MS) },
    // a full snapshot at least every N events, also stored for view --at (tests set it low)
    'snapshot-every': { type: 'string', default: process.env.SWARMLITE_SNAPSHOT_EVERY ?? String(TRAVEL_EVERY) },
    // leadership (controller/lease.ts): this host's name in the lease, and the lease's time to live in ms
    host: { type: 'string', default: process.env.SWARMLITE_NODE },
    'lease-ttl': { type: 'string', default: process.env.SWARMLITE_LEASE_TTL_MS ?? String(DEFAULT_TTL_MS) },
    // elect through the lease: on by default in a cluster (--replicas 3, where standbys run);
    // one host's one controller leads alone, and a stalled renew (a loaded server) cannot end it
    lease: { type: 'boolean', default: process.env.SWARMLITE_LEASE === '1' },
    // how placement ranks the nodes that can take a container: spread (least loaded) or binpack (fullest that fits)
    strategy: { type: 'string', default: process.env.SWARMLITE_STRATEGY ?? 'spread' },
  },
});

async function main(): Promise<void> {
  mark('modules loaded');
  const dir = join(values['state-dir']!, 'controller');
  const restartsFile = join(values['state-dir']!, 'run', 'controller.restarts');
  mkdirSync(dir, { recursive: true });
  const creds = readCreds(values.creds ?? credsPath(values['state-dir']!, 'controller'));
  const ttlMs = Number(values['lease-ttl']);
  if (!Number.isInteger(ttlMs) || ttlMs < 500 || ttlMs > 600_000) throw new Error(`invalid --lease-ttl "${values['lease-ttl']}": milliseconds, 500 to 600000`);
  // the catch-up's reader thread starts first: it loads, connects and (given where the snapshot
  // stands) makes its consumer and reads ahead while this thread connects and reads the snapshot, on
  // the other core (it is the slower side of a catch-up: every ms it starts earlier is one off the start)
  const thread = ReaderThread.start({ creds, url: values.nats! });
  // a server cut off (not dead) answers nothing: the connection is given up within ~TTL/2 and
  // a dial to it within 2 s (nats.js waits 20 s), so a standby reads the lease through another
  // server in time to take over, and a leader renews through another before its lease ends
  const ncOptions = {
    ...longLivedOptions(creds, values.nats), name: 'swarmlite-controller',
    pingInterval: Math.min(LIVENESS.pingInterval, Math.max(500, Math.floor(ttlMs / 5))), maxPingOut: 2,
  };
  const nc = await dialLongLived(ncOptions, 'controller');
  logConnection(nc, 'controller');
  // back to its own host's server once that is up again (shared/nats/home.ts), between two mutations
  let mutating = 0;
  keepOnOwnServer(nc, { options: ncOptions, local: localNames(), quiet: () => mutating === 0, log: (l) => console.error(`controller: ${l}`) });
  mark('connected');
  console.log(`controller: ${new Date().toISOString()} connected to ${nc.info?.server_name ?? '?'}`);
  const silenceMs = Number(values['node-silence']);
  if (!Number.isInteger(silenceMs) || silenceMs < 200 || silenceMs > 3_600_000) throw new Error(`invalid --node-silence "${values['node-silence']}": milliseconds, 200 to 3600000`);
  // heartbeats are heard from the connect on, standby or not, before anything waits for the
  // log: a controller that lost its lease to a cut (the lease's stream led from the cut host)
  // starts again here while the log's stream elects, and one that listened only once its view
  // had caught up gave the cut host a whole silence from then (NodeDown 10 s after the cut,
  // 3.4 s after the takeover; test/bench/fleet-loss.ts). Verdicts only once leading.
  let viewNow: () => ClusterView = emptyView;
  let nodeAppend: ((subject: string, type: 'NodeDown' | 'NodeReady', entity: string, data: object) => Promise<unknown>) | undefined;
  let leaseOf: { confirm(): Promise<boolean> } | undefined;
  let services: Reconciler | undefined;
  let settled: (seq: number) => Promise<void> = () => Promise.resolve();
  const membership = new Membership({
    view: () => viewNow(), silenceMs,
    append: (subject, type, entity, data) => (nodeAppend ? nodeAppend(subject, type, entity, data) : Promise.reject(new Error('not leading'))),
    confirm: () => (leaseOf ? leaseOf.confirm() : Promise.resolve(false)),
    // once the NodeDown is folded: the reconciler's plan must see the node down
    changed: (r) => { const seq = (r as { seq?: number } | undefined)?.seq; if (seq) void settled(seq).then(() => services?.tick(), () => undefined); },
  });
  membership.listen(nc);
  // a test hook: a log that is slow to answer (its stream electing a leader after a cut)
  const slowLog = Number(process.env.SWARMLITE_TEST_LOG_DELAY_MS) || 0;
  if (slowLog > 0) await new Promise((r) => setTimeout(r, slowLog));
  const jsm = await jetstreamReady(nc);
  mark('jetstream ready');
  const maxBytes = values['log-max-bytes'] === undefined ? DEFAULT_LIMITS.maxBytes : Number(values['log-max-bytes']);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1024 * 1024) throw new Error(`invalid --log-max-bytes "${values['log-max-bytes']}": a number of bytes, at least 1048576`);
  const strategy = values.strategy as Strategy;
  if (!STRATEGIES.includes(strategy)) throw new Error(`invalid --strategy "${values.strategy}": ${STRATEGIES.join(' or ')}`);
  const replicas = Number(values.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new Error(`invalid --replicas "${values.replicas}": 1 to 5`);
  // a JetStream cluster answers only once its servers have elected a leader: wait for it
  let inForce: number | undefined;
  for (let t0 = Date.now(); ;) {
    try { inForce = await ensureStream(jsm, { ...DEFAULT_LIMITS, maxBytes, replicas }); break; } catch (err) {
      if (Date.now() - t0 > 60_000 || !/timeout|jetstream|no responders|insufficient resources|unavailable|no suitable peers/i.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  if (inForce !== maxBytes) console.log(`controller: the server has room for ${inForce} bytes of log, not ${maxBytes}: the oldest events go past that`);
  const js = nc.jetstream();
  const useLease = values.lease === true || replicas > 1;
  // one controller and the log's only replica (no lease, no standby, not a test's two leaders)
  const alone = !useLease && process.env.SWARMLITE_TEST_NO_LEASE !== '1';
  const images = await js.views.os(IMAGE_BUCKET, { storage: StorageType.File, replicas });
  mark('stream and image bucket');
  const { signer, reg } = signerOf(creds);
  const inFlight = new Set<string>();
  const every = Number(values['snapshot-every']);
  if (!Number.isSafeInteger(every) || every < 1) throw new Error(`invalid --snapshot-every "${values['snapshot-every']}": a number of events, 1 or more`);
  // every server of a cluster renders its grants from the identities this host holds: published
  // (signed by the root) before serving, so a change made while the controller was down goes out now
  let trustPub: TrustPublisher | undefined;
  try { trustPub = new TrustPublisher({ nc, state: values['state-dir']!, replicas, log: (l) => console.log(l) }); } catch (err) {
    console.error(`controller: not publishing identities to the other servers: ${(err as Error).message}`);
  }
  trustPub?.start();
  const at = ViewKeeper.peek(dir);
  mark('peeked');
  if (at) {
    const end = (await jsm.streams.info(STREAM)).state.last_seq;
    if (end - at.seq >= THREAD_FROM_EVENTS) thread.begin({ from: at.seq + 1, to: end, check: { root: creds.root, keys: at.keys } });
  }
  mark('thread begun');
  let keeper: ViewKeeper;
  try { keeper = await ViewKeeper.open(dir, creds.root, every); } catch (err) { thread.close(); throw err; }
  keeper.thread = thread;
  mark('view loaded');
  // the sealed archive (retention): where it ends, and what the fold needs of it
  const archiveOs = await archiveStore(nc, true);
  let archived: ArchiveState | undefined;
  try { archived = await archiveState(archiveOs!, creds.root); } catch (err) {
    console.error(`controller: ${(err as Error).message}; archiving is off until tsctl audit verify is clean`);
  }
  const firstSeq = (await jsm.streams.info(STREAM)).state.first_seq;
  mark('archive state');
  if (archived && firstSeq > keeper.view.seq + 1 && archived.through > keeper.view.seq) {
    // a snapshot older than the purge: what it lacks is in the archive
    for await (const m of archivedFrom(archiveOs!, creds.root, keeper.view.seq + 1)) {
      let event;
      try { event = decodeEvent(m.data); } catch { continue; }
      keeper.foldArchived({ seq: m.seq, hash: hashBytes(m.data), event, bytes: m.data, subject: m.subject, ...(m.sig ? { sig: m.sig } : {}) });
    }
    console.log(`controller: folded the archive up to #${keeper.view.seq}`);
  }
  // every full snapshot, and the deltas between them, go to the object store too, signed, for
  // view --at (controller/travel.ts: in order, one upload at a time, thinned)
  const travel = await TravelStore.open(nc, signer, reg, (l) => console.error(`controller: ${l}`));
  mark('travel store');
  keeper.busy = () => travel.busy();
  // the catch-up reads the log in a thread of its own (controller/replay-reader.ts) as this controller
  keeper.reader = { creds, url: values.nats! };
  // koffi is loaded only then (a long catch-up's end), not on every start
  keeper.trim = () => import('../native/malloc.js').then((m) => m.releaseMemory(), () => false);
  keeper.covered = (from, to) => travel.covered(from, to);
  keeper.onSnapshot = (s) => { if (!travel.covered(s.seq - every, s.seq)) travel.full(s); };
  keeper.onDelta = (d) => travel.delta(d);
  if (travel.has(keeper.view.seq)) keeper.chainFrom(keeper.view.seq);
  const host = values.host ?? (existsSync(join(values['state-dir']!, 'run', 'node')) ? readFileSync(join(values['state-dir']!, 'run', 'node'), 'utf8').trim() : hostname().toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 63));
  // its consumer is kept on this connection's server, its own host's (shared/nats/log.ts home)
  keeper.followAs = `view_${host}_`;
  await keeper.start(nc);
  mark('caught up');
  viewNow = () => keeper.view;
  settled = (seq) => keeper.waitFor(seq);
  // standby until this controller holds the lease; losing it ends the process at once (its
  // supervisor starts it again as a standby): nothing buffered is sent after that
  // when each step of a takeover ended (wall clock, so test/bench/failover.ts can set it against a cut)
  const steps: [string, number][] = [];
  const took = (step: string) => { steps.push([step, Date.now()]); };
  const lead = await becomeLeader(nc, {
    took, host, ttlMs, replicas, lease: useLease, log: (l) => console.log(`controller: ${l}`),
    onLost: (why) => { console.error(`controller: lost the lead: ${why}; exiting to come back as a standby`); process.exit(75); },
    // while the cluster elects leaders (a server just went away) the stream may not answer: again;
    // a replica answers an info while its group has no leader, with its own (maybe older) end
    caughtUp: async () => keeper.waitFor((await whileElecting(async () => {
      const i = await jsm.streams.info(STREAM);
      if (replicas > 1 && !i.cluster?.leader) throw new Error(`503: ${STREAM} has no leader yet`);
      return i;
    })).state.last_seq),
  });
  // the chain goes on from the stream's last controller event, which the view must have folded
  // (takeOverHead says why the stream's last sequence is not enough); no write before that
  let head: { srcSeq: number; hash: string } | undefined;
  try {
    // alone, the view has folded the stream up to the end its one replica gave after this controller
    // started (caughtUp), and no other controller writes: the view's head is the stream's. Not read
    // again: nats-server 2.9 answers a last-by-subject of a wildcard that matches nothing recent by
    // scanning the stream (0.5-0.9 s of a 1.1M-event log, the largest wait of a restart's start)
    head = alone ? keeper.view.sources.controller : await takeOverHead({
      streamHead: () => controllerHeadInStream(nc), viewHead: () => keeper.view.sources.controller,
      waitFor: (seq) => keeper.waitFor(seq), refused: (seq) => (keeper.view.forged ?? []).some((f) => f.seq === seq),
      log: (l) => console.log(`controller: ${l}`),
    });
  } catch (err) {
    lead.lose(`before its first write: ${(err as Error).message}`);
    throw err;
  }
  took('head');
  mark('lead and head');
  let logFirst = (await jsm.streams.info(STREAM)).state.first_seq;
  // fenced out by another controller's write: no write from now on, and the process ends (as
  // on any loss of the lead) once the request's one-line refusal has gone out
  let deposed = false;
  const depose = (why: string) => {
    // a test's two leaders (SWARMLITE_TEST_NO_LEASE) both go on: the fence alone keeps them apart
    if (deposed || lead instanceof NoLease) return;
    deposed = true;
    const end = () => lead.lose(why);
    setTimeout(() => { void nc.flush().then(end, end); }, 20);
    setTimeout(end, 1000).unref();
  };
  // a fenced append refused (controller/lease.ts fenceAnswer): said, or the lead given up; the answer
  const refused = (err: unknown, subject: string, m: Parameters<typeof fenceAnswer>[2]): Error => {
    const a = fenceAnswer(err, subject, m);
    if (a.log) console.error(`controller: ${a.log}`);
    if (a.depose) depose(a.depose);
    return a.error;
  };
  const writing = () => { if (deposed || !lead.leading) throw new RpcError('unavailable', 'this controller no longer leads: try again (the new leader answers)'); };
  const log = new Appender(js, new SourceChain('controller', head?.srcSeq ?? 0, head?.hash ?? ''), signer, { nc, onStop: exitForRestart('controller') });
  // before any other event signed with it: the root-signed binding of this key to 'controller'
  if (keeper.view.keys?.controller !== reg.key) await log.append(subjects.keys('controller'), 'KeyRegistered', 'controller', { key: reg.key, rootSig: reg.rootSig });
  // the term in the log, fenced on ev.controller: of two controllers taking the lead at once, one
  // writes it. It is raised above every term the view folded up to the position the append
  // expects, so no ControllerLeading the term did not account for can come before it.
  const rev = lead.term;
  if (lead instanceof NoLease) {
    lead.raise(highestTerm(keeper.view));
    await log.append(subjects.controller, 'ControllerLeading', 'controller', { host, term: lead.term, ttlMs: lead.ttlMs || ttlMs });
  } else {
    const last = await whileElecting(() => lastSeqOn(nc, STREAM, subjects.controller));
    took('last-seq');
    let highest = 0;
    try {
      await keeper.waitFor(last); // folded already by takeOverHead (ev.controller is one of its subjects)
      lead.raise(highest = highestTerm(keeper.view));
    } catch (err) {
      lead.lose(`before announcing its term: ${(err as Error).message}`);
      throw err;
    }
    if (lead.term !== rev) console.log(`controller: term ${lead.term}, above the log's highest (${highest}); the lease's revision ${rev} is not (its bucket lost its history, or a leader without a lease came before)`);
    const leading = { host, term: lead.term, ttlMs: lead.ttlMs || ttlMs };
    try { await whileNoLeader(() => log.appendExpecting(subjects.controller, 'ControllerLeading', 'controller', leading, last)); } catch (err) {
      if (isFenced(err)) lead.lose(`another controller announced its lead first: ${(err as Error).message}`);
      throw err;
    }
  }
  took('leading');
  mark('leading');
  // the log's anchor outside the stream: a purge or a recreated stream cannot pass for an intact log
  let anchored = -1;
  const anchorNow = async () => {
    const v = keeper.view;
    const mark = archived && archived.through > 0 ? { archive: { through: archived.through, segments: archived.segments, digest: archived.digest } } : {};
    await writeAnchor(nc, { lastSeq: v.seq, heads: v.sources, ts: Date.now(), ...mark }, signer, reg, replicas);
    anchored = v.seq;
  };
  const anchor = async () => {
    jsm.streams.info(STREAM).then((i) => { logFirst = i.state.first_seq; }, () => undefined);
    if (keeper.view.seq === anchored || !lead.leading) return;
    await anchorNow().catch((err) => console.error(`controller: anchor: ${(err as Error).message}`));
  };
  const apiCtx: ApiContext = {
    view: () => keeper.view,
    append: (subject, type, entity, data) => { writing(); return whileNoLeader(() => log.append(subject, type, entity, data)); },
    claim: async (kind, key, entity) => {
      writing();
      const port = {
        view: () => keeper.view, firstSeq: () => logFirst, appendExpecting: log.appendExpecting.bind(log),
        known: (k: string, e: string) => (k === 'container' ? own(keeper.view.containers, e) : k === 'service' ? own(keeper.view.services ?? {}, e) : own(keeper.view.networks, e.replace(/^net-/, ''))) !== undefined,
      };
      try { await whileNoLeader(() => claim(port, kind, key, entity)); } catch (err) {
        if (!isFenced(err)) throw err;
        // the name's subject moved on without this controller: another one wrote there, so
        // this one does not lead alone (or the log was purged under it: look again once)
        const was = logFirst;
        logFirst = (await jsm.streams.info(STREAM)).state.first_seq;
        if (logFirst !== was) {
          try { await claim(port, kind, key, entity); return; } catch (again) { if (!isFenced(again)) throw again; }
        }
        throw refused(err, subjects.claim(kind, key), {
          what: `a claim of ${kind} "${key}"`,
          disagree: `the ${kind} name "${key}": the log's copies disagree on its last claim: try again shortly`,
          taken: `the ${kind} name "${key}" was just taken by another controller`,
        });
      }
    },
    // a desire for a container, fenced on its subject (controller/lease.ts desiredExpect): a
    // mismatch means another controller wrote there, so this one does not lead alone
    appendFenced: async (subject, type, entity, data, expect) => {
      writing();
      try { return await whileNoLeader(() => log.appendExpecting(subject, type, entity, data, expect)); } catch (err) {
        if (!isFenced(err)) throw err;
        throw refused(err, subject, {
          what: `a desire for ${entity.slice(0, 12)}`,
          disagree: `container ${entity.slice(0, 12)}: the log's copies disagree on its last desire (#${expect}): try again shortly`,
          taken: `container ${entity.slice(0, 12)} was just changed by another controller: this one no longer leads (try again: the leader answers)`,
        });
      }
    },
    firstSeq: () => logFirst,
    silent: (node) => membership.silent(node),
    strategy,
    waitFor: (seq) => keeper.waitFor(seq),
    until: (cond, ms) => keeper.until(cond, ms),
    images: {
      info: (k) => images.info(k), delete: (k) => images.delete(k),
      list: async () => (await images.list()).filter((i) => !i.deleted).map((i) => ({ name: i.name, size: i.size, mtime: i.mtime })),
      async read(k, max) {
        const info = await images.info(k);
        if (!info) return null;
        if (info.size > max) throw new Error(`object ${k} is ${info.size} bytes (at most ${max})`);
        const r = await images.get(k);
        if (!r) return null;
        const parts: Uint8Array[] = [];
        let n = 0;
        for await (const c of r.data as unknown as AsyncIterable<Uint8Array>) {
          n += c.length;
          if (n > max) throw new Error(`object ${k} is over ${max} bytes`);
          parts.push(c);
        }
        if (!(await r.error)) return Buffer.concat(parts);
        throw new Error(`cannot read object ${k}`);
      },
    },
    agent: async (node, v, req, timeoutMs) => {
      try { return await call(nc, subjects.agent(node), v, req, timeoutMs); } catch (err) {
        if (err instanceof TransportError) throw new RpcError(err.reason === 'timeout' ? 'timeout' : 'unavailable', `node ${node} does not answer (${err.reason})`);
        throw err;
      }
    },
    join: async (caller, node) => {
      const state = values['state-dir']!;
      // one use: in one write the token's identity goes and the node's comes (a restart finds it
      // used). The server reloads after the reply has left: the reload closes the token's
      // connection, which the reply travels on. `inFlight` only covers two requests of the same
      // token racing to that write.
      // a mirror's identities are overwritten by the next record from the trust's first host: a
      // join redeemed here would be lost, so it waits for that host's controller to lead again
      if (existsSync(mirrorMarker(state))) throw conflict('joins are answered by the controller of the host that made the cluster\'s trust, which does not lead now: try again shortly');
      if (inFlight.has(caller)) throw conflict('this join token is being used');
      inFlight.add(caller);
      let file;
      try { file = redeemJoinToken(state, caller, node); } catch (err) {
        throw conflict((err as Error).message);
      } finally { inFlight.delete(caller); }
      setTimeout(() => {
        try { reloadServer(state); } catch (err) { console.error(`controller: join reload: ${(err as Error).message}`); }
        void trustPub?.check(); // the other servers: the new node may fail over to them
      }, 100).unref();
      return readFileSync(file, 'utf8');
    },
    // identities.json is the truth the server's grants come from; read per request (a few hundred bytes)
    seesSecrets: (user) => identities(values['state-dir']!).find((i) => i.name === user)?.role !== 'viewer',
    roleOf: (user) => identities(values['state-dir']!).find((i) => i.name === user)?.role,
    archive: async (before) => {
      if (!archived) throw conflict('the archive\'s last segment does not verify (tsctl audit verify says why): nothing is sealed after it');
      const info = await jsm.streams.info(STREAM);
      if (before > info.state.last_seq + 1) throw invalid(`--before ${before} is past the log's end (#${info.state.last_seq}; --before ${info.state.last_seq + 1} archives all of it)`);
      // already sealed: the caller's purge finishes one a crash interrupted
      if (before - 1 <= archived.through) return { through: archived.through, segments: archived.segments, names: [] };
      if (info.state.first_seq > archived.through + 1) throw conflict(`#${archived.through + 1}..#${info.state.first_seq - 1} were purged without being archived: they cannot be sealed (tsctl audit verify reports it)`);
      // a node must have applied every desired event that goes
      for (const n of Object.keys(keeper.view.nodes)) {
        const ci = await jsm.consumers.info(STREAM, durableOf(n)).catch(() => undefined);
        if (ci && ci.num_pending + ci.num_ack_pending > 0 && ci.ack_floor.stream_seq < before - 1) {
          throw conflict(`node ${n} has not applied its desired events before #${before} yet (acknowledged up to #${ci.ack_floor.stream_seq}): archive less, or bring it up`);
        }
      }
      // the controller's key registration stays in the live part: agents learn its key there
      const { seq } = await log.append(subjects.keys('controller'), 'KeyRegistered', 'controller', { key: reg.key, rootSig: reg.rootSig });
      await keeper.waitFor(seq);
      await keeper.flush();
      const r = await sealRange(nc, archiveOs!, archived, before - 1, signer, reg);
      archived = r.state;
      // the anchor records the archive before anyone purges: a purge past it is then visible
      await anchorNow();
      return { through: archived.through, segments: archived.segments, names: r.names };
    },
  };
  const queue = serialiser();
  const serial = <T>(f: () => Promise<T>): Promise<T> => { mutating++; return queue(f).finally(() => { mutating--; }); };
  // a queue group per term (a test's two leaders without a lease share one: each request to one of them)
  serveApi(nc, apiCtx, serial, lead instanceof NoLease ? undefined : lead.term);
  took('serving');
  mark('serving');
  const [first] = steps;
  if (first) console.log(`controller: takeover of term ${lead.term}: ${first[0]} at ${first[1]}, ${steps.slice(1).map(([k, t]) => `${k} +${t - first[1]}`).join(', ')} ms`);
  let restart;
  try { restart = parseRestart(existsSync(restartsFile) ? readFileSync(restartsFile, 'utf8') : undefined); } catch (err) {
    console.error(`controller: ignoring ${restartsFile}: ${(err as Error).message}`);
  }
  await log.append(subjects.controller, 'ControllerStarted', 'controller', { version: VERSION, ...(restart ? { restart } : {}) });
  // the lease's and the log's streams are led from another host than this one, and from one server
  // (controller/lease.ts leaderMoves): a cut of this host then costs no election before a standby
  // takes over and serves, and the third server's loss costs a write nothing
  if (replicas > 1 && !(lead instanceof NoLease)) {
    const termFrom = Date.now();
    const away = () => {
      if (!lead.leading) return;
      const due = LEADER_STREAMS.filter((l) => Date.now() - termFrom >= l.fromMs).map((l) => l.stream);
      keepLeadersAway(nc, [...new Set([host, nc.info?.server_name ?? ''])].filter(Boolean), due)
        .then(({ moved, joined, failed }) => {
          // dated: a cut of the host a step-down lands on costs that group an election (fleet-loss traces)
          if (moved.length) console.log(`controller: ${new Date().toISOString()} asked ${moved.join(', ')} to be led from another host`);
          if (joined.length) console.log(`controller: ${new Date().toISOString()} asked ${joined.join(', ')} to be led from the log's server (${STREAM}'s)`);
          if (failed.length) console.error(`controller: could not ask a stream to be led from another host: ${failed.join('; ')}`);
          // a step-down lands on this host half the time: looked at again soon, not in 10 s,
          // since a cut of this host meanwhile would wait out that stream's election
          if (moved.length || joined.length) setTimeout(away, 2000).unref();
        }, () => undefined);
    };
    // not at once: the first seconds of a term are its first requests', and a step-down's
    // election costs the lease's renews a moment
    setTimeout(away, 5000).unref();
    setInterval(away, 10_000).unref();
  }
  nodeAppend = (subject, type, entity, data) => { writing(); return whileNoLeader(() => log.append(subject, type, entity, data as never)); };
  leaseOf = lead;
  membership.start(nc);
  // services: the tasks follow what the log wants (controller/services.ts), one action at a time with the API's mutations
  services = new Reconciler(apiCtx, { serialise: serial, log: (l) => console.error(`controller: ${l}`) });
  services.start();
  console.log(`controller ready at seq ${keeper.view.seq} (${values.nats})`);
  await anchor();
  setInterval(() => void anchor(), ANCHOR_EVERY_MS).unref();
  // expired join tokens leave the server's config: after that they cannot even connect
  const prune = () => {
    try { if (pruneJoinTokens(values['state-dir']!)) { reloadServer(values['state-dir']!); void trustPub?.check(); } } catch (err) { console.error(`controller: pruning join tokens: ${(err as Error).message}`); }
  };
  prune();
  setInterval(prune, PRUNE_EVERY_MS).unref();
  const stop = async () => {
    membership.stop();
    services.stop();
    trustPub?.stop();
    await lead.release();
    await keeper.stop().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(fatalLine('controller', err));
  process.exit(1);
});
