// Network commands: create, ls, rm, inspect.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api } from '../client.js';
import { table } from '../format.js';
import { each, json, me, nc, out } from '../session.js';

export const networkCommands: Pick<Actions, 'networkCreate' | 'networkLs' | 'networkRm' | 'networkInspect'> = {
  async networkCreate(name, o) {
    const r = await api(await nc(), capi.networkCreate, { name, ...o, user: me() }, 20000);
    out(r.name);
  },

  async networkLs(o) {
    const list = await api(await nc(), capi.networkLs, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((n) => n.name).join('\n'));
    out(table(['NAME', 'DRIVER', 'SUBNET', 'NODES'], list.map((n) => [n.name, n.driver, n.subnet, n.nodes.join(',')])));
  },

  async networkRm(names) {
    const c = await nc();
    await each(names, (name) => api(c, capi.networkRm, { name, user: me() }, 20000));
  },

  async networkInspect(names) {
    const c = await nc();
    const list: unknown[] = [];
    for (const name of names) list.push(await api(c, capi.networkInspect, { name }));
    out(json(list));
  },
};
