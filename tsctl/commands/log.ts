// The log itself: events (read and follow the stream) and audit (verify every writer's chain).
import { parseSince } from '../requests.js';
import { bytes } from '../format.js';
import type { AnyEvent, RestartInfo } from '../../shared/events.js';
import type { Actions } from '../program.js';
import { nc, out } from '../session.js';

export const logCommands: Pick<Actions, 'events' | 'audit'> = {
  async events(o) {
    const { readLog } = await import('../../shared/nats/log.js');
    const since = o.since ? parseSince(o.since) : undefined;
    const c = await nc();
    const ac = new AbortController();
    process.on('SIGINT', () => ac.abort());
    process.on('SIGTERM', () => ac.abort());
    for await (const item of readLog(c, {
      follow: o.follow === true, filter: o.filter, signal: ac.signal,
      ...(since && 'seq' in since ? { fromSeq: since.seq } : {}), ...(since && 'time' in since ? { startTime: since.time } : {}),
    })) {
      if (!item.ok) { out(o.format === 'json' ? JSON.stringify({ seq: item.seq, subject: item.subject, error: item.error.message }) : `seq ${item.seq} ${item.subject}: undecodable: ${item.error.message}`); continue; }
      const { seq, event: e } = item.stored;
      if (o.format === 'json') out(JSON.stringify({ seq, id: e.id, type: e.type, ts: e.ts, src: e.src, srcSeq: e.srcSeq, entity: e.entity, cause: e.cause, data: e.data }));
      else out(`${new Date(e.ts).toISOString()} #${seq} ${e.type} ${e.entity.slice(0, 12)} src=${e.src}${e.cause ? ` cause=${e.cause}` : ''} ${summary(e)}`);
    }
  },

  async audit(o) {
    const { readLog } = await import('../../shared/nats/log.js');
    const { emptyView, reduce } = await import('../../shared/reducer.js');
    const v = emptyView();
    let undecodable = 0, events = 0;
    for await (const item of readLog(await nc())) {
      if (item.ok) { reduce(v, item.stored); events++; } else undecodable++;
    }
    const report = { events, lastSeq: v.seq, undecodable, sources: v.sources, chainIssues: v.chainIssues, rejections: v.rejections.length, intact: v.chainIssues.length === 0 && undecodable === 0 };
    if (o.format === 'json') out(JSON.stringify(report));
    else {
      out(`${events} events up to #${v.seq}; ${Object.keys(v.sources).length} sources; ${v.rejections.length} rejected; ${undecodable} undecodable`);
      for (const [src, h] of Object.entries(v.sources)) out(`  ${src.padEnd(24)} ${String(h.srcSeq).padStart(7)} events, head ${h.hash.slice(0, 16)}`);
      for (const i of v.chainIssues) out(`  BROKEN #${i.seq} ${i.src}: ${i.problem}`);
      out(report.intact ? 'log intact: every source\'s hash chain verifies' : 'log NOT intact');
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
