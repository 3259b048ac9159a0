// Lifecycle verbs beyond run/stop/kill/rm/update: pause and unpause (the node's freezer,
// confirmed by ContainerPaused/ContainerUnpaused) and rename (the controller's alone: a
// name lives in the view; the node records the request as applied).
import { controllerApi as api, type DesireReply } from '../../shared/api/controller.js';
import { own, type ContainerView } from '../../shared/reducer.js';
import { subjects } from '../../shared/subjects.js';
import { NAME_RE } from '../../shared/ids.js';
import { conflict, invalid } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { appendDesire, checked, containerOf, userOf, type ApiContext } from './context.js';

type Lifecycle = 'ContainerPauseRequested' | 'ContainerUnpauseRequested' | 'ContainerRenameRequested' | 'ContainerStartRequested' | 'ContainerStopRequested';

export function lifecycleVerbs(ctx: ApiContext): Bound[] {
  const ask = async (c: ContainerView, type: Lifecycle, data: unknown): Promise<DesireReply> => {
    const { seq, id: eventId } = await appendDesire(ctx, c, type, checked(type, data) as never);
    await ctx.waitFor(seq);
    return { id: c.id, name: c.name, eventId, state: c.state };
  };
  const running = (ref: string): ContainerView => {
    const c = containerOf(ctx.view(), ref);
    if (c.state !== 'running') throw conflict(`container ${c.name} is not running (${c.state})`);
    return c;
  };
  // start and restart: a created or exited container, on the node that prepared it
  const startable = (ref: string, verb: string): ContainerView => {
    const c = containerOf(ctx.view(), ref);
    if (c.desired === 'removed' || c.state === 'removing') throw conflict(`container ${c.name} is being removed: it cannot ${verb}`);
    if (c.state === 'rejected') throw conflict(`container ${c.name} was refused by node ${c.node}: ${c.error ?? 'no reason given'} (tsctl rm removes it)`);
    if (c.state === 'failed') throw conflict(`container ${c.name} failed to start (${(c.error ?? '').slice(0, 200)}): nothing of it is prepared; remove it and run it anew`);
    return c;
  };
  return [
    bind(api.start, (r) => {
      const c = startable(r.ref, 'start');
      // created with a start already asked for: its node is starting it, and a client that saw
      // ContainerStarted on the node's subject may ask before this view has folded it
      // created, its start asked for, but its node went down first: it starts when the node is back
      if (c.state === 'created' && c.desired === 'running' && own(ctx.view().nodes, c.node)?.state === 'down') {
        throw conflict(`container ${c.name} waits for its node ${c.node}, which is down: it starts when the node is back (tsctl rm -f removes it)`);
      }
      if (c.state === 'running' || (c.state === 'created' && c.desired === 'running')) throw conflict(`container ${c.name} is already running`);
      return ask(c, 'ContainerStartRequested', { user: userOf(r) });
    }),
    // docker restart: the stop (a no-op on a container that is not running) then the start, in order on its subject
    // (both fenced on its subject: the start expects the stop's position, so the stop is folded first)
    bind(api.restart, async (r) => {
      let c = startable(r.ref, 'restart');
      if (c.state === 'running') {
        const { seq } = await appendDesire(ctx, c, 'ContainerStopRequested', checked('ContainerStopRequested', { timeout: r.timeout ?? c.spec.stopTimeout ?? 10, user: userOf(r) }) as never);
        await ctx.waitFor(seq);
        c = containerOf(ctx.view(), c.id);
      }
      return ask(c, 'ContainerStartRequested', { user: userOf(r) });
    }),
    bind(api.pause, (r) => {
      const c = running(r.ref);
      if (c.paused) throw conflict(`container ${c.name} is already paused`);
      return ask(c, 'ContainerPauseRequested', { user: userOf(r) });
    }),
    bind(api.unpause, (r) => {
      const c = running(r.ref);
      if (!c.paused) throw conflict(`container ${c.name} is not paused`);
      return ask(c, 'ContainerUnpauseRequested', { user: userOf(r) });
    }),
    bind(api.rename, (r) => {
      const c = containerOf(ctx.view(), r.ref);
      if (!NAME_RE.test(r.name)) throw invalid(`invalid name "${r.name.slice(0, 140)}": use letters, digits, _ . - (at most 128)`);
      const holder = Object.values(ctx.view().containers).find((x) => x.name === r.name && x.id !== c.id);
      if (holder) throw conflict(`the name "${r.name}" is already in use by container ${holder.id.slice(0, 12)}`);
      if (c.name === r.name) throw conflict(`container ${c.id.slice(0, 12)} is already named "${r.name}"`);
      return ask(c, 'ContainerRenameRequested', { name: r.name, user: userOf(r) });
    }),
  ];
}
