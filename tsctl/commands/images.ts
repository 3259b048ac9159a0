// Image commands: import, pull, load, ls, inspect, rm (pull, load and inspect are added to
// the program here, beside the verbs program.ts declares).
import type { Command } from 'commander';
import { controllerApi as capi } from '../../shared/api/controller.js';
import type { Actions } from '../program.js';
import { api, CliError } from '../client.js';
import { table, ago, bytes } from '../format.js';
import { parseDuration } from '../requests.js';
import { each, json, me, nc, out } from '../session.js';
import { addPull, imagePull, registryLogin, type PullFlags } from './pull.js';

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
    out(table(['NAME', 'DIGEST', 'LAYERS', 'SIZE', 'IMPORTED'], list.map((i) => [i.name, i.digest.slice(0, 19), String(i.layers?.length ?? 1), bytes(i.size), ago(i.importedAt)])));
  },

  async imageRm(names, o) {
    const c = await nc();
    await each(names, (name) => api(c, capi.imageRm, { name, force: o.force === true, user: me() }));
  },
};

export const imageExtras = {
  imagePull,

  async imageLoad(o: { input: string; name?: string }) {
    const { loadImages } = await import('../image-load.js');
    const loaded = await loadImages(await nc(), o.input, { ...(o.name ? { name: o.name } : {}), user: me() });
    out(loaded.map((l) => `Loaded image: ${l.name} (${l.digest})`).join('\n'));
  },

  async imagePush(name: string, target: string | undefined, o: PullFlags) {
    const { pushImage } = await import('../image-push.js');
    const login = await registryLogin(o);
    const r = await pushImage(await nc(), name, target, {
      insecure: o.insecure === true, ...login,
      ...(process.stderr.isTTY && !o.quiet ? { progress: (l: string) => process.stderr.write(`${l}\n`) } : {}),
    });
    out(o.quiet ? r.digest : `${r.ref}: digest: ${r.digest} (${r.pushed} layer(s) pushed, ${(r.bytes / 1e6).toFixed(1)} MB${r.mounted ? `, ${r.mounted} mounted from another repository` : ''})`);
  },

  async imageSave(names: string[], o: { output?: string }) {
    const file = o.output ?? '-';
    // docker's own refusal: a tar on a terminal is garbage on the screen
    if (file === '-' && process.stdout.isTTY) throw new CliError('image save: refusing to write an archive to a terminal: give -o FILE or redirect stdout');
    const { saveImages } = await import('../image-save.js');
    await saveImages(await nc(), names, file);
  },

  async imageTag(source: string, target: string) {
    const { IMAGE_NAME_RE } = await import('../../shared/ids.js');
    if (!IMAGE_NAME_RE.test(target)) throw new CliError(`invalid image name "${target}": letters, digits, _ . - or a reference like host:5000/team/app:1`);
    const c = await nc();
    const { lookupImages } = await import('../image-blobs.js');
    const [img] = await lookupImages(c, [source]);
    // a second name for the same config and layers: nothing is copied
    await api(c, capi.imageImport, { name: target, digest: img!.digest, ...(img!.layers ? { layers: img!.layers } : {}), source: `tag:${img!.name}`.slice(0, 512), user: me() });
  },

  async imageHistory(name: string, o: { format?: string }) {
    const c = await nc();
    const { lookupImages, imageStore, storedImage } = await import('../image-blobs.js');
    const [img] = await lookupImages(c, [name]);
    const s = await storedImage(await imageStore(c), img!);
    type Entry = { created?: string; created_by?: string; comment?: string; empty_layer?: boolean };
    const cfg = JSON.parse(s.config.toString('utf8')) as { history?: Entry[] };
    // history entries that made a layer take the layers in order; the others (ENV, CMD…) made none
    const rows: { createdBy: string; created?: string; size: number; comment?: string; layer?: string }[] = [];
    let next = 0;
    const hist: Entry[] = cfg.history?.length ? cfg.history : s.layers.map(() => ({}));
    for (const h of hist) {
      const l = h.empty_layer ? undefined : s.layers[next++];
      rows.push({ createdBy: h.created_by ?? '', ...(h.created ? { created: h.created } : {}), size: l?.size ?? 0, ...(h.comment ? { comment: h.comment } : {}), ...(l ? { layer: l.digest } : {}) });
    }
    for (; next < s.layers.length; next++) rows.push({ createdBy: '', size: s.layers[next]!.size, layer: s.layers[next]!.digest });
    rows.reverse();
    if (o.format === 'json') return out(json(rows));
    out(table(['CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], rows.map((r) => [r.created ? ago(Date.parse(r.created)) : '<missing>', r.createdBy.slice(0, 60), bytes(r.size), r.comment ?? ''])));
  },

  async imagePrune(o: { all?: boolean; grace?: string }) {
    const graceMs = o.grace === undefined ? undefined : /^0(ms|s|m|h|d)?$/.test(o.grace) ? 0 : parseDuration(o.grace, '--grace');
    const c = await nc();
    let reclaimed = 0;
    // every image here has a name: none is dangling, as docker calls an untagged one
    if (!o.all) out('no dangling images (every image in the cluster has a name): image prune -a removes those no container uses');
    else {
      for (const i of await api(c, capi.imageLs, {})) {
        try {
          await api(c, capi.imageRm, { name: i.name, force: false, user: me() });
          out(`Deleted: ${i.name} (${i.digest})`);
          reclaimed += i.size;
        } catch (err) {
          // in use by a container (or removed meanwhile): kept
          if (!/is used by|no such image/.test((err as Error).message)) throw err;
        }
      }
    }
    // the blobs no image or container uses (a fill or a pull killed between its put and its
    // word to the controller left them), put longer ago than the grace
    const gc = await api(c, capi.imageGc, { ...(graceMs !== undefined ? { graceMs } : {}), user: me() }, 60000);
    for (const b of gc.removed) { out(`Deleted blob: ${b.digest}`); reclaimed += b.size; }
    out(`Total reclaimed space: ${bytes(reclaimed)}`);
  },

  async imageInspect(names: string[]) {
    const c = await nc();
    const list = await api(c, capi.imageLs, {});
    const found = names.map((n) => {
      const i = list.find((x) => x.name === n) ?? list.find((x) => x.digest === n || x.digest.slice(7).startsWith(n.replace(/^sha256:/, '')));
      if (!i) throw new CliError(`no such image "${n}" (tsctl image ls lists them)`);
      return { ...i, layers: i.layers ?? [i.digest] };
    });
    // docker's Config (Cmd, Env, Healthcheck, ...) from the stored config, where the caller may read the store (a viewer may not)
    // (a one-tar image, whose one layer is its digest, has no config blob to read)
    const { imageConfigShown } = await import('../image-blobs.js');
    const oneTar = (i: { digest: string; layers: string[] }) => i.layers.length === 1 && i.layers[0] === i.digest;
    out(json(await Promise.all(found.map(async (i) => ({ ...i, ...(oneTar(i) ? {} : await imageConfigShown(c, i)) })))));
  },
};

/** Adds `image pull`, `image load` and `image inspect` under the program's `image` command. */
export function addImageExtras(program: Command, a = imageExtras): void {
  const image = program.commands.find((c) => c.name() === 'image');
  if (!image) throw new Error('tsctl has no image command');
  addPull(image, (r, o) => a.imagePull(r, o));
  image.command('load').description('load images from a docker save archive or an OCI image layout tar (gzip or plain)')
    .requiredOption('-i, --input <file>', 'the archive').option('--name <name>', 'image name (default: the archive\'s tag)')
    .action((o: { input: string; name?: string }) => a.imageLoad(o));
  image.command('push').description('push an image to a registry (OCI distribution API)').argument('<name>', 'the image in the cluster')
    .argument('[ref]', 'host[:port]/path[:tag] to push to (default: the name)')
    .option('--insecure', 'plain http (loopback registries are http already)')
    .option('-u, --username <user>', 'registry login (or SWARMLITE_REGISTRY_USER)')
    .option('--password-stdin', 'read the registry password from stdin (or SWARMLITE_REGISTRY_PASSWORD)')
    .option('-q, --quiet', 'only the manifest digest')
    .action((n: string, r: string | undefined, o: PullFlags) => a.imagePush(n, r, o));
  image.command('save').description('save images to a tar archive (docker save format and OCI image layout)').argument('<names...>')
    .option('-o, --output <file>', 'the archive (default: stdout)')
    .action((n: string[], o: { output?: string }) => a.imageSave(n, o));
  image.command('tag').description('give an image another name').argument('<source>').argument('<target>')
    .action((s: string, t: string) => a.imageTag(s, t));
  image.command('history').description('show how an image was made: one line per history entry, newest first').argument('<name>')
    .option('--format <fmt>', 'json').action((n: string, o: { format?: string }) => a.imageHistory(n, o));
  image.command('prune').description('remove images no container uses (with -a), and the stored blobs nothing uses').option('-a, --all', 'every image no container uses')
    .option('--grace <duration>', 'keep blobs nothing uses that were put less than this long ago (default 1h: a pull puts its layers before it records its image); 0s takes them all')
    .option('-f, --force', 'do not ask (tsctl never asks)').action((o: { all?: boolean; grace?: string }) => a.imagePrune(o));
  image.command('inspect').description('show images: digest, layers, source').argument('<names...>').action((n: string[]) => a.imageInspect(n));
}
