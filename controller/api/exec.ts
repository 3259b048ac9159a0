// tsctl exec: the controller knows who asks (the authenticated caller) and where the
// container runs; it routes the exec to that node's agent (agent.<node>.exec, a subject only
// the controller may publish), which runs it, streams its output straight to the client and
// appends ExecStarted/ExecExited. Nothing is appended here: an exec changes no desired state.
// tsctl cp into a container goes the same way (agent.<node>.copyin; ContainerFilesCopied).
import { controllerApi as api } from '../../shared/api/controller.js';
import { agentApi } from '../../shared/api/agent.js';
import { conflict, invalid, RpcError } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { containerOf, userOf, type ApiContext } from './context.js';
import { KEEPS_ROOT } from '../../shared/reducer.js';

/** A node unpacking a large copy takes its time: under tsctl's own 120 s wait, so the caller gets the node's answer. */
const COPY_IN_MS = 110_000;

export function execVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.exec, async (r) => {
      if (r.args.length === 0 || r.args[0] === '') throw invalid('exec needs a command (no command given)');
      const c = containerOf(ctx.view(), r.ref);
      if (c.state !== 'running') throw conflict(`container ${c.name} is not running (${c.state})`);
      if (c.paused) throw conflict(`container ${c.name} is paused, unpause the container before exec`);
      if (!ctx.agent) throw new RpcError('unavailable', 'this controller cannot reach the nodes');
      return ctx.agent(c.node, agentApi.exec, {
        id: c.id, execId: r.execId, args: r.args, ...(r.env ? { env: r.env } : {}), ...(r.workdir ? { workdir: r.workdir } : {}),
        ...(r.processUser ? { processUser: r.processUser } : {}), ...(r.interactive ? { interactive: true } : {}), ...(r.tty ? { tty: r.tty } : {}), by: userOf(r),
      });
    }),
    // tsctl cp into a container: the node unpacks what the client staged there, naming the caller
    bind(api.copyIn, async (r) => {
      const c = containerOf(ctx.view(), r.ref);
      if (!KEEPS_ROOT.has(c.state)) throw conflict(`container ${c.name} is ${c.state}: cp needs its root, which its node keeps until rm`);
      if (!ctx.agent) throw new RpcError('unavailable', 'this controller cannot reach the nodes');
      return ctx.agent(c.node, agentApi.copyin, { id: c.id, transfer: r.transfer, size: r.size, digest: r.digest, dest: r.dest, ...(r.name ? { name: r.name } : {}), ...(r.archive ? { archive: true } : {}), by: userOf(r) }, COPY_IN_MS);
    }),
  ];
}
