// Node commands: nodes.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api, CliError } from '../client.js';
import { table, ago, bytes } from '../format.js';
import { each, me, nc, out } from '../session.js';

export const nodeCommands: Pick<Actions, 'nodes' | 'nodeRm' | 'nodeUpdate'> = {
  async nodes(o) {
    const list = await api(await nc(), capi.nodes, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    const labels = (l?: Record<string, string>) => Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    out(table(['NODE', 'HOSTNAME', 'STATE', 'AVAILABILITY', 'CPUS', 'MEMORY', 'KERNEL', 'LABELS', 'JOINED'],
      list.map((n) => [n.id, n.hostname, n.state ?? 'ready', n.availability ?? 'active', String(n.cpus), bytes(n.memory), n.kernel, labels(n.labels), ago(n.joinedAt)])));
  },

  async nodeUpdate(node, o) {
    if (o.availability !== undefined && !['active', 'pause', 'drain'].includes(o.availability)) throw new CliError(`invalid --availability "${o.availability}": active, pause or drain`);
    for (const kv of o.labelAdd) if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}=/.test(kv)) throw new CliError(`invalid --label-add "${kv.slice(0, 60)}": key=value (a key of letters, digits, . _ - /)`);
    await api(await nc(), capi.nodeUpdate, {
      node, ...(o.availability ? { availability: o.availability as 'active' } : {}),
      ...(o.labelAdd.length ? { labelAdd: o.labelAdd } : {}), ...(o.labelRm.length ? { labelRm: o.labelRm } : {}), user: me(),
    });
    out(node);
  },

  async nodeRm(nodes, o) {
    const c = await nc();
    await each(nodes, (node) => api(c, capi.nodeRm, { node, force: o.force === true, user: me() }));
  },
};
