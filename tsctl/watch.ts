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
import { watchNodes } from './node-watch.js';

/**
 * The one line for a wait whose node the controller declared down: the report cannot come
 * until the node is heard again. 125: the daemon's side failed, as docker says it.
 */
export function nodeWentDown(what: string, node: string, before: string): CliError {
  return new CliError(`${what}: node ${node} went down before ${before} (tsctl ps -a shows it; it goes on if the node comes back, tsctl rm -f removes it)`, 125);
}

/**
 * Resolves when the node reports `type` for the container (ContainerStarted: run -d;
 * ContainerCreated: create); a failure becomes the CliError, and so does its node declared
 * down (told by `placed` once the reply names it). `what`: the report, as "it started".
 */
export function nodeReports(c: NatsConnection, id: string, type: AnyEvent['type'], ms: number, what: string): { done: Promise<void>; cancel: () => void; placed: (node: string) => void } {
  const nodes = watchNodes(c);
  const sub = c.subscribe(subjects.stateOf(id));
  const reported = (async () => {
    const limit = waitMs(ms);
    const timer = setTimeout(() => sub.unsubscribe(), limit);
    try {
      for await (const m of sub) {
        let e: AnyEvent;
        try { e = decodeEvent(m.data); } catch { continue; }
        if (e.type === type) return;
        if (e.type === 'ContainerFailed') throw new CliError(e.data.error, e.data.exitCode);
        if (e.type === 'EventRejected') throw new CliError(`rejected by the node: ${e.data.reason}`);
      }
      throw new CliError(`container ${id.slice(0, 12)}: the node did not report ${what} within ${Math.round(limit / 1000)} s (tsctl ps -a shows it)`);
    } finally { clearTimeout(timer); sub.unsubscribe(); }
  })();
  const lost = nodes.down.then((node) => { throw nodeWentDown(`container ${id.slice(0, 12)}`, node, what); });
  const done = Promise.race([reported, lost]).finally(() => { nodes.cancel(); sub.unsubscribe(); });
  done.catch(() => undefined);
  return { done, cancel: () => { nodes.cancel(); sub.unsubscribe(); }, placed: (n) => nodes.placed(n) };
}

/** Resolves when the node reports the container started (run -d). */
export const waitStarted = (c: NatsConnection, id: string) => nodeReports(c, id, 'ContainerStarted', 60000, 'it started');

/**
 * Asks for a change and waits until the node reports it done (or rejects it, or is declared
 * down: watched from before the inspect, and a node down already is read after the reply).
 */
export async function untilNode<Req extends { ref: string }>(c: NatsConnection, ref: string, v: Verb<Req, DesireReply>, body: Omit<Req, 'ref' | 'user'>,
  doneType: AnyEvent['type'], waitIf: (state: string) => boolean, timeout: number): Promise<void> {
  const nodes = watchNodes(c);
  try {
    const ctr = await api(c, controllerApi.inspect, { ref });
    nodes.placed(ctr.node);
    const sub = c.subscribe(subjects.stateOf(ctr.id));
    try {
      const r = await api(c, v, { ref: ctr.id, ...body, user: me() } as unknown as Req, timeout);
      if (!waitIf(r.state)) return;
      const timer = setTimeout(() => sub.unsubscribe(), waitMs(timeout));
      const reported = (async () => {
        for await (const m of sub) {
          let e: AnyEvent;
          try { e = decodeEvent(m.data); } catch { continue; }
          if (e.type === doneType) { clearTimeout(timer); return; }
          if (e.type === 'EventRejected' && e.cause === r.eventId) { clearTimeout(timer); throw new CliError(`${ctr.name}: ${e.data.reason}`); }
        }
        throw new CliError(`${ctr.name}: the node did not confirm ${v.name} within ${Math.round(waitMs(timeout) / 1000)} s`);
      })();
      const lost = nodes.down.then((node) => { clearTimeout(timer); throw nodeWentDown(ctr.name, node, `it confirmed ${v.name}`); });
      // down before the watch began: the node list says so (a verdict heard since is newer)
      void api(c, controllerApi.nodes, {}).then((ns) => nodes.seed(ns.filter((n) => n.state === 'down').map((n) => n.id)), () => undefined);
      await Promise.race([reported, lost]);
    } finally { sub.unsubscribe(); }
  } finally { nodes.cancel(); }
}

/**
 * Streams a container's output and resolves with the exit code `docker run` would give; 125
 * once its node is declared down (`node`, or told by `placed` once a run's reply names it).
 */
export function attachTo(c: NatsConnection, id: string, autoRemove: boolean, node?: string, running = false): { done: Promise<number>; cancel: () => void; onStarted: (f: () => void) => void; placed: (node: string) => void } {
  let resolve!: (n: number) => void;
  const done = new Promise<number>((r) => (resolve = r));
  let exitCode: number | undefined;
  let eof = false;
  let removed = false;
  let startedCb: (() => void) | undefined;
  let grace: NodeJS.Timeout | undefined;
  // tsctl attach: running before this watch began (its NodeDown is not "before it started")
  let started = running;
  const o = io(); // the callbacks below run outside the call (tsctl/warm.ts serves several)
  const nodes = watchNodes(c, node);
  const finish = () => { clearTimeout(grace); logs.unsubscribe(); state.unsubscribe(); nodes.cancel(); resolve(exitCode!); };
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
      if (e.type === 'ContainerStarted') { started = true; startedCb?.(); }
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
  void nodes.down.then((n) => {
    if (exitCode !== undefined) return; // its exit came first: that is the answer
    o.stderr.write(`tsctl: ${started
      ? `container ${id.slice(0, 12)}: node ${n} went down while attached; what became of the container is unknown until the node is heard again (tsctl ps -a)`
      : nodeWentDown(`container ${id.slice(0, 12)}`, n, 'it started').message}\n`);
    exitCode = 125;
    finish();
  });
  return { done, cancel: () => { logs.unsubscribe(); state.unsubscribe(); nodes.cancel(); }, onStarted: (f) => (startedCb = f), placed: (n) => nodes.placed(n) };
}
