// Image commands: import, ls, rm.
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api } from '../client.js';
import { table, ago, bytes } from '../format.js';
import { each, me, nc, out } from '../session.js';

export const imageCommands: Pick<Actions, 'imageImport' | 'imageLs' | 'imageRm'> = {
  async imageImport(file, o) {
    const { importImage } = await import('../image-import.js');
    const r = await importImage(await nc(), file, o.name, me());
    out(r.digest);
  },

  async imageLs(o) {
    const list = await api(await nc(), capi.imageLs, {});
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((i) => i.name).join('\n'));
    out(table(['NAME', 'DIGEST', 'SIZE', 'IMPORTED'], list.map((i) => [i.name, i.digest.slice(0, 19), bytes(i.size), ago(i.importedAt)])));
  },

  async imageRm(names, o) {
    const c = await nc();
    await each(names, (name) => api(c, capi.imageRm, { name, force: o.force === true, user: me() }));
  },
};
