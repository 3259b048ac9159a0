// Image verbs: import (after tsctl uploaded the layer to the object store), ls, rm.
import { subjects } from '../../shared/subjects.js';
import { DIGEST_RE, NAME_RE } from '../../shared/ids.js';
import { controllerApi as api } from '../../shared/api/controller.js';
import { conflict, invalid, notFound } from '../../shared/rpc.js';
import { bind, type Bound } from '../../shared/nats/rpc.js';
import { own } from '../../shared/reducer.js';
import { checked, nonEmpty, userOf, type ApiContext } from './context.js';

/** The object store's key of a layer: its digest with ':' replaced. */
export const layerKey = (digest: string) => digest.replace(':', '-');

export function imageVerbs(ctx: ApiContext): Bound[] {
  return [
    bind(api.imageImport, async (r) => {
      const name = nonEmpty(r.name, 'name');
      if (!NAME_RE.test(name)) throw invalid(`invalid image name "${name}": use letters, digits, _ . -`);
      const digest = nonEmpty(r.digest, 'digest');
      if (!DIGEST_RE.test(digest)) throw invalid(`invalid digest "${digest}"`);
      const info = await ctx.images.info(layerKey(digest));
      if (!info) throw notFound(`layer ${digest} was not uploaded (tsctl image import uploads it first)`);
      const stored = Buffer.from(info.digest.replace(/^SHA-256=/, ''), 'base64url').toString('hex');
      if (`sha256:${stored}` !== digest) throw invalid(`uploaded layer does not match ${digest} (got sha256:${stored.slice(0, 12)}…): upload again`);
      const data = checked('ImageImported', { name, digest, size: info.size, user: userOf(r) });
      const { seq } = await ctx.append(subjects.image(digest.slice(7)), 'ImageImported', digest.slice(7), data);
      await ctx.waitFor(seq);
      return { name, digest };
    }),
    bind(api.imageLs, () => Object.values(ctx.view().images).sort((a, b) => a.name.localeCompare(b.name))),
    bind(api.imageRm, async (r) => {
      const name = nonEmpty(r.name, 'name');
      const img = own(ctx.view().images, name);
      if (!img) throw notFound(`no such image "${name}" (tsctl image ls lists them)`);
      const users = Object.values(ctx.view().containers).filter((c) => c.spec.image === name);
      if (users.length && r.force !== true) throw conflict(`image "${name}" is used by container ${users[0].name}: remove it first or use image rm -f`);
      const { seq } = await ctx.append(subjects.image(img.digest.slice(7)), 'ImageRemoved', img.digest.slice(7), { name, digest: img.digest, user: userOf(r) });
      await ctx.waitFor(seq);
      if (!Object.values(ctx.view().images).some((i) => i.digest === img.digest)) await ctx.images.delete(layerKey(img.digest)).catch(() => undefined);
      return { name };
    }),
  ];
}
