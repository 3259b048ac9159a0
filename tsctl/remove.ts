// `tsctl rm` of many containers: many requests in flight at once (up to a bound), all of them
// waiting on ONE subscription to the state events made before the first request, so a node's
// ContainerRemoved cannot slip past however fast it comes. One ref used to cost an inspect, a
// subscription and the request, 16 at a time: 100 removals waited in 7 rounds.
import type { NatsConnection, Subscription } from 'nats';
import { decodeEvent } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import type { AnyEvent } from '../shared/events.js';
import { controllerApi } from '../shared/api/controller.js';
import { api, CliError } from './client.js';
import { each, io, me, waitMs } from './session.js';

/**
 * How many rm requests one command has in flight (the waits for the nodes' reports are not
 * counted: holding a slot for a whole removal let 100 reach the agent over 2 s). A request is
 * answered once the desired event is in the log, so the agent gets them as fast as they come.
 */
const REQUESTS = 32;
/** Refs worked on at once (each mostly waiting for its node's report). */
const REFS = 4096;

/** What a removal waits for: its container removed, or its request refused by the node. */
type Outcome = { removed: true } | { removed: false; reason: string };

class Removals {
  private sub: Subscription;
  private seen = new Map<string, Outcome>(); // by container id (removed) and by event id (refused)
  private waiters = new Map<string, (o: Outcome | undefined) => void>();

  /** `gone`: the call's end (its client's, in the warm process): every wait ends with it (one listener, not one a wait) */
  constructor(c: NatsConnection, private gone?: AbortSignal) {
    gone?.addEventListener('abort', () => { for (const end of new Set(this.waiters.values())) end(undefined); }, { once: true });
    // every container's state events (ev.state.*.*): the ids are known only from the replies
    this.sub = c.subscribe(subjects.stateOf('*'), {
      callback: (_e, m) => {
        let e: AnyEvent;
        try { e = decodeEvent(m.data); } catch { return; }
        if (e.type === 'ContainerRemoved') this.settle(e.entity, { removed: true });
        else if (e.type === 'EventRejected' && e.cause) this.settle(e.cause, { removed: false, reason: e.data.reason });
      },
    });
  }

  private settle(key: string, o: Outcome): void {
    const w = this.waiters.get(key);
    if (w) { this.waiters.delete(key); w(o); } else this.seen.set(key, o);
  }

  /** The first outcome for container `id` or its request `eventId`; undefined after `ms` or once the call is gone. */
  wait(id: string, eventId: string, ms: number): Promise<Outcome | undefined> {
    const early = this.seen.get(id) ?? this.seen.get(eventId);
    if (early) return Promise.resolve(early);
    if (this.gone?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => end(undefined), ms);
      const end = (o: Outcome | undefined) => { clearTimeout(timer); this.waiters.delete(id); this.waiters.delete(eventId); resolve(o); };
      this.waiters.set(id, end);
      this.waiters.set(eventId, end);
    });
  }

  close(): void { this.sub.unsubscribe(); }
}

/** Removes each ref and returns once its node reports it gone (docker rm's contract). */
/** `volumes`: rm -v, each container's anonymous volumes too. */
export async function removeAll(c: NatsConnection, refs: string[], force: boolean, volumes = false): Promise<void> {
  // served by the warm process (tsctl/cli-run.ts), the call ends when its client does (killed,
  // Ctrl-C): no more requests then, as from a killed tsctl (those already sent stand)
  const gone = io().gone;
  const removals = new Removals(c, gone);
  try {
    // a round trip makes sure the server has the subscription before any request goes out
    await c.flush();
    let active = 0;
    const queue: (() => void)[] = [];
    const request = async <T>(f: () => Promise<T>): Promise<T> => {
      if (active >= REQUESTS) await new Promise<void>((r) => queue.push(r)); else active++;
      try {
        if (gone?.aborted) throw new CliError('the client went away');
        return await f();
      } finally { const next = queue.shift(); if (next) next(); else active--; }
    };
    await each(refs, async (ref) => {
      const r = await request(() => api(c, controllerApi.rm, { ref, force, ...(volumes ? { volumes } : {}), user: me() }, 20000));
      // a container its node refused has nothing on any node: the controller forgets it at once
      if (r.state === 'rejected') return;
      const o = await removals.wait(r.id, r.eventId, waitMs(20000));
      if (gone?.aborted) throw new CliError('the client went away');
      if (!o) throw new CliError(`${r.name}: the node did not confirm rm within ${Math.round(waitMs(20000) / 1000)} s`);
      if (!o.removed) throw new CliError(`${r.name}: ${o.reason}`);
    }, REFS);
  } finally { removals.close(); }
}
