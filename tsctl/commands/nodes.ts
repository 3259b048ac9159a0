// Node commands: nodes.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api } from '../client.js';
import { table, ago, bytes } from '../format.js';
import { each, me, nc, out } from '../session.js';

export const nodeCommands: Pick<Actions, 'nodes' | 'nodeRm'> = {
  async nodes(o) {
    const list = await api(await nc(), capi.nodes, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    out(table(['NODE', 'HOSTNAME', 'CPUS', 'MEMORY', 'KERNEL', 'JOINED'], list.map((n) => [n.id, n.hostname, String(n.cpus), bytes(n.memory), n.kernel, ago(n.joinedAt)])));
  },

  async nodeRm(nodes, o) {
    const c = await nc();
    await each(nodes, (node) => api(c, capi.nodeRm, { node, force: o.force === true, user: me() }));
  },
};
