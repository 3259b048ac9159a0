// The controller's API: every resource's verbs in one table, served on api.<caller>.<verb> (the caller
// is the authenticated identity the server allows on that subject).
// Mutations run one at a time: a name check and the append that claims the name must not
// interleave with another request's.
import type { NatsConnection, Subscription } from 'nats';
import { serve, type Bound } from '../../shared/nats/rpc.js';
import { subjects } from '../../shared/subjects.js';
import type { ApiContext } from './context.js';
import { containerVerbs } from './containers.js';
import { networkVerbs } from './networks.js';
import { imageVerbs } from './images.js';
import { nodeVerbs } from './nodes.js';
import { execVerbs } from './exec.js';
import { lifecycleVerbs } from './lifecycle.js';
import { logVerbs } from './log.js';
import { volumeVerbs } from './volumes.js';
import { serviceVerbs } from './services.js';

export function apiTable(ctx: ApiContext): Bound[] {
  return [...containerVerbs(ctx), ...networkVerbs(ctx), ...imageVerbs(ctx), ...nodeVerbs(ctx), ...execVerbs(ctx), ...lifecycleVerbs(ctx), ...logVerbs(ctx), ...volumeVerbs(ctx), ...serviceVerbs(ctx)];
}

/** Runs mutations one after another. */
export function serialiser(): <T>(f: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(f: () => Promise<T>): Promise<T> => {
    const p = tail.then(f, f);
    tail = p.catch(() => undefined);
    return p;
  };
}

/**
 * `serialise`: shared with whatever else mutates (the service reconciler), so a name check and
 * its claim never interleave. `term`: the lease's term (controller/lease.ts): each leader serves
 * in a queue group of its own term, so a request reaches one member of every group with
 * interest: the new leader's, and a deposed leader's whose interest the servers still hold (its
 * host cut off: until the routes to it time out). One group for every term sent part of the
 * requests to the cut-off leader, unanswered until tsctl's 15 s timeout. A deposed leader that
 * does get a request refuses it by its own clock, and its writes are fenced.
 */
export function serveApi(nc: NatsConnection, ctx: ApiContext, serialise = serialiser(), term?: number): Subscription {
  return serve(nc, subjects.api, apiTable(ctx), { queue: term === undefined ? 'controller' : `controller-${term}`, serialise, identified: true });
}

export type { ApiContext };
