// The log itself: events (read and follow the stream) and audit (verify every writer's chain).
import { eventFilter, parseSince } from '../requests.js';
import { bytes } from '../format.js';
import type { AnyEvent, RestartInfo } from '../../shared/events.js';
import type { Actions } from '../program.js';
import { identity, nc, out } from '../session.js';
import { CliError } from '../client.js';

export const logCommands: Pick<Actions, 'events' | 'audit' | 'history' | 'viewAt'> = {
  async events(o) {
    const { readLog } = await import('../../shared/nats/log.js');
    const since = o.since ? parseSince(o.since) : undefined;
    const f = eventFilter(o.filter ?? []);
    const c = await nc();
    const ac = new AbortController();
    process.on('SIGINT', () => ac.abort());
    process.on('SIGTERM', () => ac.abort());
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
  },

  async history(ref, o) {
    const { readLog } = await import('../../shared/nats/log.js');
    const { controllerApi } = await import('../../shared/api/controller.js');
    const { api } = await import('../client.js');
    const c = await nc();
    // a network's entity is net-<name>; a container's id comes from the controller (a removed one: give its id)
    const id = ref.startsWith('net-') || /^[0-9a-f]{64}$/.test(ref) ? ref : (await api(c, controllerApi.inspect, { ref })).id;
    for await (const item of readLog(c, { filter: `ev.*.*.${id}` })) {
      if (!item.ok) continue;
      const { seq, event: e } = item.stored;
      if (o.format === 'json') { out(JSON.stringify({ seq, id: e.id, type: e.type, ts: e.ts, src: e.src, cause: e.cause, data: e.data })); continue; }
      out(`${new Date(e.ts).toISOString()} #${seq} ${e.type.padEnd(24)} ${e.src.padEnd(16)}${e.cause ? ` because of ${e.cause.slice(0, 12)}` : ''} ${summary(e)}`);
    }
  },

  async viewAt(o) {
    const { readLog } = await import('../../shared/nats/log.js');
    const { emptyView, reduce, refuse } = await import('../../shared/reducer.js');
    const { KeyRing } = await import('../../shared/signing.js');
    const at = parseSince(o.at);
    const me = identity();
    const ring = me ? new KeyRing(me.root) : undefined;
    const v = emptyView();
    // the same fold as the controller's, signatures included, stopped at the point asked
    for await (const item of readLog(await nc())) {
      if (!item.ok) continue;
      const s = item.stored;
      if ('seq' in at ? s.seq > at.seq : s.event.ts > at.time.getTime()) break;
      const problem = ring?.check(s.event, s.bytes!, s.sig);
      if (problem) refuse(v, s, problem); else reduce(v, s);
    }
    if (o.format === 'json') { out(JSON.stringify({ seq: v.seq, nodes: v.nodes, containers: v.containers, networks: v.networks, images: v.images })); return; }
    out(`the cluster at #${v.seq}: ${Object.keys(v.nodes).length} nodes, ${Object.keys(v.containers).length} containers, ${Object.keys(v.networks).length} networks, ${Object.keys(v.images).length} images`);
    for (const n of Object.values(v.nodes)) out(`  node ${n.id} joined ${new Date(n.joinedAt).toISOString()}`);
    for (const x of Object.values(v.containers)) out(`  ${x.id.slice(0, 12)} ${x.name.padEnd(20)} ${x.state.padEnd(9)} ${x.node} by ${x.requestedBy}`);
  },

  async audit(o) {
    const { readLog, readLogBatches } = await import('../../shared/nats/log.js');
    const { readAnchor } = await import('../../shared/nats/anchor.js');
    const { Auditor } = await import('../../shared/audit.js');
    const { STREAM } = await import('../../shared/subjects.js');
    const me = identity();
    if (!me) throw new CliError('audit verify needs credentials (the cluster root\'s key comes with them)');
    let since = 1;
    if (o.since !== undefined) {
      since = Number(o.since);
      if (!Number.isSafeInteger(since) || since < 1) throw new CliError(`invalid --since "${o.since}": a stream sequence (1 or more)`);
    }
    const c = await nc();
    const info = await (await c.jetstreamManager()).streams.info(STREAM);
    const anchor = await readAnchor(c, me.root);
    const a = new Auditor(me.root, since, typeof anchor === 'object' ? anchor : undefined);
    if (typeof anchor === 'string') a.findings.push({ kind: 'anchor', seq: 0, detail: anchor });
    else if (!anchor && since === 1 && info.state.last_seq > 0) a.findings.push({ kind: 'anchor', seq: 0, detail: 'the log has events but no anchor (was it deleted?)' });
    a.head(info.state.first_seq, info.state.last_seq);
    // the keys registered before the range: what its signatures are checked against
    if (since > 1) {
      for await (const item of readLog(c, { filter: 'ev.keys.>' })) {
        if (item.ok && item.stored.seq < since) a.learn(item.stored.event, item.stored.bytes!, item.stored.sig);
      }
    }
    const last = info.state.last_seq;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    // a batch at a time (readLogBatches): per-message promises were a good part of the replay's cost
    read: for await (const batch of readLogBatches(c, { fromSeq: since })) {
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
    const report = { events: a.events, from: since, lastSeq: last, firstSeq: info.state.first_seq, sources: a.heads, findings, intact: findings.length === 0, ms: Math.round(ms), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
    if (o.format === 'json') out(JSON.stringify(report));
    else {
      out(`${a.events} events #${since}..#${last}; ${Object.keys(a.heads).length} sources; anchor ${typeof anchor === 'object' ? `#${anchor.lastSeq} at ${new Date(anchor.ts).toISOString()}` : 'none'}`);
      for (const [src, h] of Object.entries(a.heads)) out(`  ${src.padEnd(24)} ${String(h.srcSeq).padStart(7)} events, head ${h.hash.slice(0, 16)} at #${h.seq}`);
      for (const f of findings) out(`  ${f.kind.toUpperCase().padEnd(11)} #${f.seq}${f.src ? ` ${f.src}` : ''}: ${f.detail}`);
      out(report.intact ? 'log intact: every event signed by its source\'s registered key, every chain and sequence complete' : `log NOT intact: ${findings.length} finding(s)`);
    }
    if (!report.intact) process.exitCode = 1;
  },
};

const restarted = (r?: RestartInfo) => (r ? ` restart=${r.count} after="${r.exit}" up=${r.upMs}ms by=${r.by}` : '');

function summary(e: AnyEvent): string {
  switch (e.type) {
    case 'ContainerRequested': return `node=${e.data.node} name=${e.data.spec.name} image=${e.data.spec.image} by=${e.data.user}`;
    case 'ContainerStarted': return `pid=${e.data.pid}`;
    case 'ContainerExited': return `exitCode=${e.data.exitCode}${e.data.signal ? ` signal=${e.data.signal}` : ''}${e.data.oomKilled ? ' oomKilled' : ''}`;
    case 'ContainerFailed': return `error=${JSON.stringify(e.data.error)}`;
    case 'EventRejected': return `reason=${JSON.stringify(e.data.reason)}`;
    case 'NodeJoined': return `cpus=${e.data.cpus} memory=${bytes(e.data.memory)}${restarted(e.data.restart)}`;
    case 'ControllerStarted': return `version=${e.data.version}${restarted(e.data.restart)}`;
    case 'ImageImported': case 'ImageRemoved': return `name=${e.data.name} digest=${e.data.digest.slice(0, 19)}`;
    default: return 'user' in e.data ? `by=${(e.data as { user: string }).user}` : '';
  }
}
