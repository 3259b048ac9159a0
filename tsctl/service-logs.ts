// tsctl service logs: every task's output, each line prefixed with the task and its node as
// docker's (`web.1.3f9c2a1b7d0e@node1    | …`). The output comes from each task's node
// (agent.<node>.logs for the history, logs.<node>.<ctr> live), as tsctl logs reads one
// container's; a follow also picks up the tasks an update or a restart starts meanwhile.
import type { NatsConnection, Subscription } from 'nats';
import { agentApi } from '../shared/api/agent.js';
import { controllerApi as capi, type ServiceTaskRow } from '../shared/api/controller.js';
import { subjects } from '../shared/subjects.js';
import { agent, api } from './client.js';

/** Cuts one task's byte stream into lines, each prefixed; a partial line waits for its end. Pure. */
export class LinePrefixer {
  private part = new Map<number, string>();
  constructor(readonly prefix: string) {}

  /** The complete lines of `data` (stream 1 or 2), prefixed; what is left waits for the next call or flush(). */
  push(stream: number, data: string): string[] {
    const all = (this.part.get(stream) ?? '') + data;
    const lines = all.split('\n');
    this.part.set(stream, lines.pop()!);
    return lines.map((l) => `${this.prefix}${l}\n`);
  }

  /** The partial lines left at the end of the output. */
  flush(): [number, string][] {
    const out: [number, string][] = [];
    for (const [s, p] of this.part) if (p) out.push([s, `${this.prefix}${p}\n`]);
    this.part.clear();
    return out;
  }
}

/** A task's prefix: `<service>.<slot>.<id12>@<node>`, padded so the bars line up. */
export const taskPrefix = (t: ServiceTaskRow, width: number): string => `${`${t.name}.${t.id!.slice(0, 12)}@${t.node}`.padEnd(width)} | `;

/** The last `n` lines of a prefixed stream: what --tail keeps of each task. Pure. */
export function lastLines<T>(lines: T[], n: number | undefined): T[] {
  return n === undefined ? lines : n === 0 ? [] : lines.slice(-n);
}

export interface ServiceLogsOptions { follow?: boolean; tail?: number; write: (stream: number, text: string) => void; signal?: AbortSignal }

/** Prints the output of every task of `ref` (that has a container); with `follow`, until the signal. */
export async function serviceLogs(c: NatsConnection, ref: string, o: ServiceLogsOptions): Promise<void> {
  const seen = new Set<string>();
  const subs: Subscription[] = [];
  const tasks = async () => (await api(c, capi.servicePs, { ref })).filter((t) => t.id && t.node);
  const width = (rows: ServiceTaskRow[]) => Math.max(0, ...rows.map((t) => `${t.name}.${t.id!.slice(0, 12)}@${t.node}`.length));
  let w = 0;

  const one = async (t: ServiceTaskRow): Promise<void> => {
    seen.add(t.id!);
    const p = new LinePrefixer(taskPrefix(t, w));
    let next = 0, printing = false;
    const live: [number, number, string][] = [];
    const emit = (s: number, d: string) => { for (const l of p.push(s, d)) o.write(s, l); };
    // live output first, so nothing between the history's end and the subscription is lost;
    // a record's file offset says whether the history already had it
    if (o.follow) {
      subs.push(c.subscribe(subjects.logs(t.node!, t.id!), {
        callback: (_e, m) => {
          if (m.headers?.get('eof')) { for (const [s, l] of p.flush()) o.write(s, l); return; }
          const at = Number(m.headers?.get('o') ?? 0), s = Number(m.headers?.get('s') ?? 1), d = Buffer.from(m.data).toString();
          if (!printing) { live.push([at, s, d]); return; }
          if (at >= next) emit(s, d);
        },
      }));
    }
    const hist: [number, string][] = [];
    try {
      for (;;) {
        const r = await agent(c, t.node!, agentApi.logs, { id: t.id!, offset: next });
        for (const [s, d] of r.frames) hist.push([s, Buffer.from(d, 'base64').toString()]);
        next = r.next;
        if (r.end) break;
      }
    } catch (err) {
      if (/permission/i.test((err as Error).message)) throw err; // a viewer: not one task's problem
      // a node that is gone, or a task whose container was removed meanwhile: say so on its line
      o.write(2, `${taskPrefix(t, w)}(no output: ${(err as Error).message.split('\n')[0]})\n`);
      return;
    }
    const lines: [number, string][] = [];
    for (const [s, d] of hist) for (const l of p.push(s, d)) lines.push([s, l]);
    if (!o.follow) lines.push(...p.flush());
    for (const [s, l] of lastLines(lines, o.tail)) o.write(s, l);
    printing = true;
    for (const [at, s, d] of live.splice(0)) if (at >= next) emit(s, d);
  };

  let rows = await tasks();
  w = width(rows);
  await Promise.all(rows.map(one));
  if (!o.follow) return;
  // tasks started later (an update, a restart) are followed from their start
  while (!o.signal?.aborted) {
    await new Promise<void>((res) => { const t = setTimeout(res, 1000); o.signal?.addEventListener('abort', () => { clearTimeout(t); res(); }, { once: true }); });
    if (o.signal?.aborted) break;
    rows = await tasks().catch(() => rows);
    const fresh = rows.filter((t) => !seen.has(t.id!));
    if (fresh.length) { w = Math.max(w, width(fresh)); await Promise.all(fresh.map(one)); }
  }
  for (const s of subs) s.unsubscribe();
}
