// The log itself: events (read and follow the stream) and audit (verify every writer's chain).
import { eventFilter, parseSince } from '../requests.js';
import { bytes, containerRows } from '../format.js';
import type { AnyEvent, RestartInfo, StoredEvent } from '../../shared/events.js';
import type { RawMsg } from '../../shared/nats/bulk.js';
import type { Actions } from '../program.js';
import { identity, mark, natsUrl, nc, out } from '../session.js';
import { CliError } from '../client.js';

/**
 * The server decides who reads the log (shared/nats/trust.ts: operators and admins, not
 * viewers); its refusal becomes one line instead of a stack.
 */
function readable<A extends unknown[]>(f: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a) => {
    try { await f(...a); } catch (err) {
      if (err instanceof CliError || !/permissions violation/i.test((err as Error).message ?? '')) throw err;
      const me = identity();
      throw new CliError(`permission denied: "${me?.name ?? 'anonymous'}" may not read the event log${me?.role ? ` (a ${me.role}; operators and admins may)` : ''}`);
    }
  };
}

export const logCommands: Pick<Actions, 'events' | 'audit' | 'history' | 'viewAt' | 'logArchive'> = {
  /**
   * Retention: the controller seals #1..#before-1 into archive segments and records them in
   * its anchor; then this admin purges them (only an admin may purge). A crash in between
   * leaves them sealed and still in the stream: the next call finishes the purge.
   */
  async logArchive(o) {
    const { controllerApi } = await import('../../shared/api/controller.js');
    const { api } = await import('../client.js');
    const { STREAM } = await import('../../shared/subjects.js');
    const before = Number(o.before);
    if (!Number.isSafeInteger(before) || before < 2) throw new CliError(`invalid --before "${o.before}": a stream position (2 or more; the events before it are archived)`);
    const c = await nc();
    const r = await api(c, controllerApi.logArchive, { before }, 600_000);
    let purged = 0;
    try {
      const jsm = await c.jetstreamManager();
      if ((await jsm.streams.info(STREAM)).state.first_seq <= r.through) purged = (await jsm.streams.purge(STREAM, { seq: r.through + 1 })).purged;
    } catch (err) {
      throw new CliError(`sealed #1..#${r.through}, but the purge failed: ${(err as Error).message} (the same command again finishes it)`);
    }
    if (o.format === 'json') { out(JSON.stringify({ ...r, purged })); return; }
    out(`archived #1..#${r.through} in ${r.segments} segment(s)${r.names.length ? ` (new: ${r.names.join(', ')})` : ''}; purged ${purged} message(s) from the stream`);
  },

  events: readable(async (o) => {
    const { readLog } = await import('../../shared/nats/log.js');
    const since = o.since ? parseSince(o.since) : undefined;
    const f = eventFilter(o.filter ?? []);
    const c = await nc();
    const ac = new AbortController();
    // the read ends cleanly on a signal; one stuck in a JetStream call still exits soon after
    const quit = (code: number) => () => { ac.abort(); setTimeout(() => process.exit(code), 500).unref(); };
    process.on('SIGINT', quit(130));
    process.on('SIGTERM', quit(143));
    for await (const item of readLog(c, {
      follow: o.follow === true, filter: f.subject, signal: ac.signal,
      ...(since && 'seq' in since ? { fromSeq: since.seq } : {}), ...(since && 'time' in since ? { startTime: since.time } : {}),
    })) {
      if (!item.ok) { out(o.format === 'json' ? JSON.stringify({ seq: item.seq, subject: item.subject, error: item.error.message }) : `seq ${item.seq} ${item.subject}: undecodable: ${item.error.message}`); continue; }
      const { seq, event: e } = item.stored;
      if (!f.match(e, item.stored.subject)) continue;
      if (o.format === 'json') out(JSON.stringify({ seq, id: e.id, type: e.type, ts: e.ts, src: e.src, srcSeq: e.srcSeq, entity: e.entity, cause: e.cause, data: e.data }));
      else out(`${new Date(e.ts).toISOString()} #${seq} ${e.type} ${e.entity.slice(0, 12)} src=${e.src}${e.cause ? ` cause=${e.cause}` : ''} ${summary(e)}`);
    }
  }),

  history: readable(async (ref, o) => {
    const { readLog } = await import('../../shared/nats/log.js');
    const { controllerApi } = await import('../../shared/api/controller.js');
    const { api } = await import('../client.js');
    const c = await nc();
    // a network's entity is net-<name>, a volume's vol-<name>; a container's id comes from the controller (a removed one: give its id)
    const id = ref.startsWith('net-') || /^volh?-/.test(ref) || /^[0-9a-f]{64}$/.test(ref) ? ref : (await api(c, controllerApi.inspect, { ref })).id;
    for await (const item of readLog(c, { filter: `ev.*.*.${id}` })) {
      if (!item.ok) continue;
      const { seq, event: e } = item.stored;
      if (o.format === 'json') { out(JSON.stringify({ seq, id: e.id, type: e.type, ts: e.ts, src: e.src, cause: e.cause, data: e.data })); continue; }
      out(`${new Date(e.ts).toISOString()} #${seq} ${e.type.padEnd(24)} ${e.src.padEnd(16)}${e.cause ? ` because of ${e.cause.slice(0, 12)}` : ''} ${summary(e)}`);
    }
  }),

  viewAt: readable(async (o) => {
    const { emptyView } = await import('../../shared/reducer.js');
    const { KeyRing } = await import('../../shared/signing.js');
    const { CheckedFold } = await import('../../shared/fold.js');
    const { listSnapshots, getSnapshot, travelPlan } = await import('../../shared/nats/snapshots.js');
    const { readSnapshot, applyJournal, SnapshotError } = await import('../../shared/snapshot.js');
    const { readSnapshotLazy, applyJournalLazy, LazyFallback } = await import('../../shared/snapshot-lazy.js');
    const { decodeItem, readRange } = await import('../../shared/nats/bulk.js');
    const { WireConn } = await import('../../shared/nats/wire-conn.js');
    // the events over a connection of the reader's own (wire-conn.ts: frames parsed in place), as
    // the audit's; opened meanwhile, and nats.js's is used if it cannot be: the same view, only
    // slower, so only the trace says it (a cluster that refuses this one refuses nats.js's too,
    // and that error is the command's)
    const me = identity();
    const wire = me ? WireConn.open(me, natsUrl() ?? me.url, { name: 'tsctl-view-at' }).catch((err: Error) => { mark(`events over nats.js (own connection: ${err.message})`); return undefined; }) : Promise.resolve(undefined);
    try {
      const at = parseSince(o.at, Date.now(), '--at');
      const c = await nc();
      const to = 'seq' in at ? at.seq : Number.MAX_SAFE_INTEGER;
      // The fold's events after `from` (up to `until`), stopped at the point asked (`past`: an event
      // after it was met). The bulk reader (raw messages, no JsMsg per event), bounded at a position
      // asked, on a consumer without a subject filter: a filtered one on a long stream took the server
      // over a second to make (it counts what is pending through the stream's rest); event subjects are
      // all the stream holds. The raw messages are kept: a second fold decodes its own events (a fold
      // may change the objects an event holds).
      const read = async (from: number, until = to) => {
        const msgs: RawMsg[] = [], events: StoredEvent[] = [];
        let past = false;
        read: for await (const ms of readRange(c, { from: from + 1, to: until, unfiltered: true, wire: await wire })) {
          for (const m of ms) {
            const item = decodeItem(m);
            if (!item.ok) continue;
            const s = item.stored;
            if ('seq' in at ? s.seq > at.seq : s.event.ts > at.time.getTime()) { past = true; break read; }
            msgs.push(m); events.push(s);
          }
        }
        let fresh = false;
        return { past, events: () => { if (!fresh) { fresh = true; return events; } return msgs.map((m) => (decodeItem(m) as { stored: StoredEvent }).stored); } };
      };
      // from the nearest signed snapshot at or before the point asked (the controller stores one every
      // TRAVEL_EVERY events) and the chain of signed deltas after it, else from #1; a snapshot that does
      // not verify is said and skipped, a delta that does not ends the chain where it is
      const plan = me ? travelPlan(await listSnapshots(c), 'seq' in at ? { seq: at.seq } : { time: at.time.getTime() }) : undefined;
      mark('listed');
      // the table's rows need five fields of each container: the snapshot is read lazily
      // (shared/snapshot-lazy.ts); the JSON output needs every field of every container
      const lazyOk = o.format !== 'json';
      // where the fold starts if the snapshot and its deltas verify: its events are read meanwhile
      // (the server answers on its own core while this one reads the snapshot). Not before a whole
      // decode (JSON): a request made before that long synchronous decode timed out (its timer ran
      // before its answer was read).
      const start = plan ? (plan.deltas[plan.deltas.length - 1] ?? plan.full).seq : 0;
      const ahead = plan && lazyOk ? read(start) : undefined;
      ahead?.catch(() => undefined); // awaited below; not an unhandled rejection while the snapshot is fetched
      let got: Uint8Array | string | undefined, links: (Uint8Array | string)[] = [];
      if (plan) {
        // fetched all at once (the deltas are small; the full is most of the time)
        const w = await wire;
        [got, ...links] = await Promise.all([plan.full, ...plan.deltas].map((s) => getSnapshot(c, s, me!.root, w)));
        mark('fetched');
        if (typeof got === 'string') process.stderr.write(`tsctl: snapshot #${plan.full.seq} refused (${got}): folding the whole log\n`);
      }
      const build = async (lazy: boolean) => {
        let v = emptyView();
        let deltas = 0, base = 0, rows: ReturnType<typeof readSnapshotLazy>['lazy'] | undefined;
        const notes: string[] = [];
        if (plan && got instanceof Uint8Array) {
          const { full } = plan;
          try {
            if (lazy) ({ view: v, lazy: rows } = readSnapshotLazy(got)); else v = readSnapshot(got);
          } catch (err) {
            if (!(err instanceof SnapshotError)) throw err;
            notes.push(`tsctl: snapshot #${full.seq} unreadable (${err.message}): folding the whole log`);
          }
          mark('decoded');
          if (v.seq === full.seq) base = full.seq;
          for (let i = 0; base && i < plan.deltas.length; i++) {
            const d = plan.deltas[i]!, link = links[i]!;
            let problem = typeof link === 'string' ? link : undefined;
            if (!problem) {
              // a frame that does not read is refused before any of it is applied (applyJournal decodes it whole first)
              try { if ((rows ? applyJournalLazy(v, rows, link as Uint8Array, full.seq) : applyJournal(v, link as Uint8Array, full.seq)) !== 1 || v.seq !== d.seq) problem = 'not the frame its name says'; } catch (err) {
                if (!(err instanceof SnapshotError)) throw err;
                problem = err.message;
              }
            }
            if (problem) { notes.push(`tsctl: snapshot delta #${d.seq} refused (${problem}): folding from #${v.seq}`); break; }
            deltas += 1;
          }
        }
        mark('deltas');
        const from = v.seq;
        // the same fold as the controller's, signatures included (a run at a time), stopped at the point asked
        const fold = new CheckedFold(v, me ? new KeyRing(me.root, (v.keys ??= {})) : undefined);
        const feed = (es: StoredEvent[]) => { for (const s of es) fold.add(s, true); };
        if (ahead && from <= start) {
          // a refused snapshot or delta: the events up to where the read ahead began first
          const gap = from < start ? await read(from, start) : undefined;
          if (gap) feed(gap.events());
          if (!gap?.past) feed((await ahead).events());
        } else feed((await read(from)).events());
        fold.flush();
        mark('folded');
        return { v, rows, deltas, base, from, fold, notes };
      };
      let r;
      try { r = await build(lazyOk); } catch (err) {
        // what the lazy reader does not read (or a container it found broken): the whole decode decides
        if (!(err instanceof LazyFallback)) throw err;
        mark(`lazy read gave up (${err.message})`);
        r = await build(false);
      }
      const { v, rows: lazy, deltas, base, from, fold, notes } = r;
      for (const n of notes) process.stderr.write(`${n}\n`);
      if (o.format === 'json') { out(JSON.stringify({ seq: v.seq, fromSnapshot: from, snapshot: base, deltas, folded: fold.folded + fold.refused, nodes: v.nodes, containers: v.containers, networks: v.networks, images: v.images })); return; }
      const { rows, count } = containerRows(lazy ?? v.containers);
      const lines = [`the cluster at #${v.seq} (${from ? `snapshot #${base}${deltas ? ` + ${deltas} deltas to #${from}` : ''} + ` : ''}${fold.folded + fold.refused} events folded): ${Object.keys(v.nodes).length} nodes, ${count} containers, ${Object.keys(v.networks).length} networks, ${Object.keys(v.images).length} images`];
      for (const n of Object.values(v.nodes)) lines.push(`  node ${n.id} joined ${new Date(n.joinedAt).toISOString()}`);
      // two writes (a write per line was a system call each: 100,000 of them with a large view)
      out(lines.join('\n'));
      if (rows.length) process.stdout.write(rows);
      mark(lazy ? `printed (${lazy.made} of ${count} containers made whole)` : 'printed');
    } finally {
      void wire.then((w) => w?.close());
    }
  }),

  audit: readable(async (o) => {
    const { readLog } = await import('../../shared/nats/log.js');
    const { readParallel } = await import('../../shared/nats/bulk-parallel.js');
    const { readRange } = await import('../../shared/nats/bulk.js');
    const { WireConn } = await import('../../shared/nats/wire-conn.js');
    const threads = o.threads === undefined ? AUDIT_READERS : Number(o.threads);
    if (!Number.isSafeInteger(threads) || threads < 0 || threads > 16) throw new CliError(`invalid --threads "${o.threads}": 0 to 16 reader threads`);
    const { readAnchor } = await import('../../shared/nats/anchor.js');
    const { Auditor } = await import('../../shared/audit.js');
    const { archiveStore, segmentNames, segmentBytes } = await import('../../shared/nats/archive.js');
    const { openSegment, checkChain } = await import('../../shared/archive.js');
    const { decodeEvent, hashBytes } = await import('../../shared/codec.js');
    const { STREAM } = await import('../../shared/subjects.js');
    const me = identity();
    if (!me) throw new CliError('audit verify needs credentials (the cluster root\'s key comes with them)');
    let since = 1;
    if (o.since !== undefined) {
      since = Number(o.since);
      if (!Number.isSafeInteger(since) || since < 1) throw new CliError(`invalid --since "${o.since}": a stream sequence (1 or more)`);
    }
    // the bulk reader's own connection (below), its handshake made while nats.js's connects and the
    // stream's state, the anchor and the archive are asked: closed at the end whether it was used or not
    const opening = threads ? undefined : WireConn.open(me, natsUrl() ?? me.url, { name: 'tsctl-audit' });
    opening?.catch(() => undefined);
    try {
      const c = await nc();
      const info = await (await c.jetstreamManager()).streams.info(STREAM);
      const anchor = await readAnchor(c, me.root);
      const a = new Auditor(me.root, since, typeof anchor === 'object' ? anchor : undefined);
      if (typeof anchor === 'string') a.findings.push({ kind: 'anchor', seq: 0, detail: anchor });
      else if (!anchor && since === 1 && info.state.last_seq > 0) a.findings.push({ kind: 'anchor', seq: 0, detail: 'the log has events but no anchor (was it deleted?)' });
      const last = info.state.last_seq;
      const feed = (seq: number, subject: string, data: Uint8Array, sig: string | undefined) => {
        let e;
        try { e = decodeEvent(data); } catch (err) { a.junk(seq, subject, (err as Error).message); return; }
        a.event(seq, subject, e, data, hashBytes(data), sig);
      };
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      // the sealed archive (retention) first: segments that verify and chain from #1, then the live stream after them
      const os = await archiveStore(c);
      const names = os ? await segmentNames(os) : [];
      const mark = typeof anchor === 'object' ? anchor.archive : undefined;
      let archivedEvents = 0;
      let from = since;
      if (since === 1) {
        const chain = [];
        for (const name of names) {
          const bytes = await segmentBytes(os!, name);
          const o = bytes ? openSegment(bytes, me.root) : 'the object is gone';
          if (typeof o === 'string') { a.findings.push({ kind: 'archive', seq: Number(/^seg-(\d+)/.exec(name)?.[1] ?? 0), detail: `${name}: ${o}` }); continue; }
          chain.push({ name, first: o.body.first, last: o.body.last, prev: o.body.prev, digest: o.digest });
          for (const m of o.body.msgs) if (m.seq >= o.body.first && m.seq <= o.body.last) feed(m.seq, m.subject, m.data, m.sig);
          archivedEvents += o.body.msgs.length;
        }
        for (const p of checkChain(chain, mark)) a.findings.push({ kind: 'archive', ...p });
        from = a.resume(info.state.first_seq, last);
      } else {
        a.head(info.state.first_seq, last);
        // the keys registered before the range: from the archive's last segment, then the stream
        const lastSeg = names.length ? await segmentBytes(os!, names[names.length - 1]!) : undefined;
        const o = lastSeg ? openSegment(lastSeg, me.root) : undefined;
        if (o && typeof o === 'object') for (const [src, k] of Object.entries(o.body.keys)) a.learnKey(src, k.key, k.rootSig);
        for await (const item of readLog(c, { filter: 'ev.keys.>' })) {
          if (item.ok && item.stored.seq < since) a.learn(item.stored.event, item.stored.bytes!, item.stored.sig);
        }
      }
      // the bulk reader (shared/nats/bulk.ts: no per-message JsMsg), in reader threads that read,
      // decode and hash chunks of the range beside the checker (bulk-parallel.ts); either way
      // the batches come in stream order, so the Auditor sees one sequence
      // One thread reads over a connection of its own (shared/nats/wire-conn.ts: frames parsed in
      // place, no nats.js object per message), the consumer made through `c`.
      const wire = !opening || from > last ? undefined : await opening.catch((err: Error) => { throw new CliError(`audit verify: ${err.message}`); });
      const range = { from, to: last, wire };
      // one thread: each raw message straight to `feed` (no ReadItem per event)
      if (!threads) {
        read: for await (const batch of readRange(c, range)) {
          for (const m of batch) {
            if (m.seq > last) break read;
            feed(m.seq, m.subject, m.data, m.sig);
          }
        }
      } else read: for await (const batch of readParallel({ creds: me, url: natsUrl() }, range, threads)) {
        for (const item of batch) {
          if (!item.ok) { if (item.seq > last) break read; a.junk(item.seq, item.subject, item.error.message); continue; }
          const s = item.stored;
          if (s.seq > last) break read;
          a.event(s.seq, s.subject!, s.event, s.bytes!, s.hash, s.sig);
        }
      }
      const findings = a.end(last);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      const report = { events: a.events, from: since, lastSeq: last, firstSeq: info.state.first_seq, archive: { segments: names.length, events: archivedEvents, through: mark?.through ?? 0 }, sources: a.heads, findings, intact: findings.length === 0, ms: Math.round(ms), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
      if (o.format === 'json') out(JSON.stringify(report));
      else {
        out(`${a.events} events #${since}..#${last}${names.length && since === 1 ? ` (${archivedEvents} of them in ${names.length} archive segment(s))` : ''}; ${Object.keys(a.heads).length} sources; anchor ${typeof anchor === 'object' ? `#${anchor.lastSeq} at ${new Date(anchor.ts).toISOString()}` : 'none'}`);
        for (const [src, h] of Object.entries(a.heads)) out(`  ${src.padEnd(24)} ${String(h.srcSeq).padStart(7)} events, head ${h.hash.slice(0, 16)} at #${h.seq}`);
        for (const f of findings) out(`  ${f.kind.toUpperCase().padEnd(11)} #${f.seq}${f.src ? ` ${f.src}` : ''}: ${f.detail}`);
        out(report.intact ? 'log intact: every event signed by its source\'s registered key, every chain and sequence complete' : `log NOT intact: ${findings.length} finding(s)`);
      }
      if (!report.intact) process.exitCode = 1;
    } finally {
      void opening?.then((w) => w.close(), () => undefined);
    }
  }),
};

/**
 * Reader threads of `audit verify` by default: none. On 2 loaded cores two threads took twice the
 * CPU of one (each loads its modules, connects, and every event crosses threads by structured
 * clone) and were slower by the clock too; --threads N asks for them.
 */
const AUDIT_READERS = 0;

const restarted = (r?: RestartInfo) => (r ? ` restart=${r.count} after="${r.exit}" up=${r.upMs}ms by=${r.by}` : '');

function summary(e: AnyEvent): string {
  switch (e.type) {
    case 'ContainerRequested': return `node=${e.data.node} name=${e.data.spec.name} image=${e.data.spec.image} by=${e.data.user}`;
    case 'ContainerStarted': return `pid=${e.data.pid}`;
    case 'ContainerExited': return `exitCode=${e.data.exitCode}${e.data.signal ? ` signal=${e.data.signal}` : ''}${e.data.oomKilled ? ' oomKilled' : ''}`;
    case 'ContainerFailed': return `error=${JSON.stringify(e.data.error)}`;
    case 'EventRejected': return `reason=${JSON.stringify(e.data.reason)}`;
    case 'ExecStarted': return `exec=${e.data.execId.slice(0, 12)} by=${e.data.user} pid=${e.data.pid}${e.data.processUser ? ` as=${e.data.processUser}` : ''} cmd=${JSON.stringify(e.data.args.join(' ').slice(0, 80))}`;
    case 'ExecExited': return `exec=${e.data.execId.slice(0, 12)} exitCode=${e.data.exitCode}${e.data.signal ? ` signal=${e.data.signal}` : ''}`;
    case 'ExecFailed': return `exec=${e.data.execId.slice(0, 12)} by=${e.data.user} exitCode=${e.data.exitCode} error=${JSON.stringify(e.data.error)}`;
    case 'ContainerFilesCopied': return `dest=${JSON.stringify(e.data.dest)} by=${e.data.user} entries=${e.data.entries} bytes=${e.data.bytes}`;
    case 'ContainerRenameRequested': return `name=${e.data.name} by=${e.data.user}`;
    case 'NodeJoined': return `cpus=${e.data.cpus} memory=${bytes(e.data.memory)}${restarted(e.data.restart)}`;
    case 'ControllerStarted': return `version=${e.data.version}${restarted(e.data.restart)}`;
    case 'NodeDown': return `silent for more than ${e.data.silenceMs} ms`;
    case 'NodeReady': return e.data.downMs !== undefined ? `heard again after ${e.data.downMs} ms down` : 'heard again';
    case 'NodeUpdated': return [e.data.availability && `availability=${e.data.availability}`, ...Object.entries(e.data.labelAdd ?? {}).map(([k, v]) => `+${k}=${v}`),
      ...(e.data.labelRm ?? []).map((k) => `-${k}`), `by=${e.data.user}`].filter(Boolean).join(' ');
    case 'ImageImported': case 'ImageRemoved': return `name=${e.data.name} digest=${e.data.digest.slice(0, 19)}`;
    default: return 'user' in e.data ? `by=${(e.data as { user: string }).user}` : '';
  }
}
