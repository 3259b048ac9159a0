// Waiting for what a node reports: tsctl subscribes to a container's state events (and its
// output) before it asks, so nothing it waits for can slip past.
import type { NatsConnection } from 'nats';
import { decodeEvent } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import type { AnyEvent } from '../shared/events.js';
import type { Verb } from '../shared/rpc.js';
import { controllerApi, type DesireReply } from '../shared/api/controller.js';
import { api, CliError } from './client.js';
import { io, mark, me, waitMs, write } from './session.js';

/** Resolves when the node reports the container started; a failure becomes the CliError. */
export function waitStarted(c: NatsConnection, id: string): { done: Promise<void>; cancel: () => void } {
  const sub = c.subscribe(subjects.stateOf(id));
  const done = (async () => {
    const limit = waitMs(60000);
    const timer = setTimeout(() => sub.unsubscribe(), limit);
    try {
      for await (const m of sub) {
        let e: AnyEvent;
        try { e = decodeEvent(m.data); } catch { continue; }
        if (e.type === 'ContainerStarted') return;
        if (e.type === 'ContainerFailed') throw new CliError(e.data.error, e.data.exitCode);
        if (e.type === 'EventRejected') throw new CliError(`rejected by the node: ${e.data.reason}`);
      }
      throw new CliError(`container ${id.slice(0, 12)}: the node did not report a start within ${limit / 1000} s (tsctl ps -a shows it)`);
    } finally { clearTimeout(timer); sub.unsubscribe(); }
  })();
  done.catch(() => undefined);
  return { done, cancel: () => sub.unsubscribe() };
}

/** Asks for a change and waits until the node reports it done (or rejects it). */
export async function untilNode<Req extends { ref: string }>(c: NatsConnection, ref: string, v: Verb<Req, DesireReply>, body: Omit<Req, 'ref' | 'user'>,
  doneType: AnyEvent['type'], waitIf: (state: string) => boolean, timeout: number): Promise<void> {
  const ctr = await api(c, controllerApi.inspect, { ref });
  const sub = c.subscribe(subjects.stateOf(ctr.id));
  try {
    const r = await api(c, v, { ref: ctr.id, ...body, user: me() } as unknown as Req, timeout);
    if (!waitIf(r.state)) return;
    const timer = setTimeout(() => sub.unsubscribe(), waitMs(timeout));
    for await (const m of sub) {
      let e: AnyEvent;
      try { e = decodeEvent(m.data); } catch { continue; }
      if (e.type === doneType) { clearTimeout(timer); return; }
      if (e.type === 'EventRejected' && e.cause === r.eventId) { clearTimeout(timer); throw new CliError(`${ctr.name}: ${e.data.reason}`); }
    }
    throw new CliError(`${ctr.name}: the node did not confirm ${v.name} within ${Math.round(waitMs(timeout) / 1000)} s`);
  } finally { sub.unsubscribe(); }
}

/** Streams a container's output and resolves with the exit code `docker run` would give. */
export function attachTo(c: NatsConnection, id: string, autoRemove: boolean): { done: Promise<number>; cancel: () => void; onStarted: (f: () => void) => void } {
  let resolve!: (n: number) => void;
  const done = new Promise<number>((r) => (resolve = r));
  let exitCode: number | undefined;
  let eof = false;
  let removed = false;
  let startedCb: (() => void) | undefined;
  let grace: NodeJS.Timeout | undefined;
  const o = io(); // the callbacks below run outside the call (tsctl/warm.ts serves several)
  const finish = () => { clearTimeout(grace); logs.unsubscribe(); state.unsubscribe(); resolve(exitCode!); };
  // like docker run --rm, return once the container is gone, not merely exited; the log's
  // end comes before the exit, but wait briefly for either if a message raced
  const maybeFinish = () => {
    if (exitCode === undefined) return;
    if (eof && (!autoRemove || removed)) return finish();
    clearTimeout(grace);
    grace = setTimeout(finish, autoRemove ? 10000 : 2000);
  };
  const logs = c.subscribe(subjects.logsOf(id), {
    callback: (_e, m) => {
      if (m.headers?.get('eof')) { mark('eof'); eof = true; maybeFinish(); return; }
      write(Number(m.headers?.get('s') ?? 1), m.data, o);
    },
  });
  const state = c.subscribe(subjects.stateOf(id), {
    callback: (_e, m) => {
      let e: AnyEvent;
      try { e = decodeEvent(m.data); } catch { return; }
      mark(e.type);
      if (e.type === 'ContainerStarted') startedCb?.();
      else if (e.type === 'ContainerExited') { exitCode = e.data.exitCode; maybeFinish(); }
      else if (e.type === 'ContainerRemoved') { removed = true; maybeFinish(); }
      else if (e.type === 'ContainerFailed') {
        o.stderr.write(`tsctl: ${e.data.error}\n`);
        exitCode = e.data.exitCode;
        finish();
      } else if (e.type === 'EventRejected') {
        o.stderr.write(`tsctl: rejected by the node: ${e.data.reason}\n`);
        exitCode = 125;
        finish();
      }
    },
  });
  return { done, cancel: () => { logs.unsubscribe(); state.unsubscribe(); }, onStarted: (f) => (startedCb = f) };
}
