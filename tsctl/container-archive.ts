// `tsctl export` and `tsctl commit`: a container's files as a tar, read page by page from its
// node (agent.<node>.archive) and checked against the sha256 the node computed over the
// whole archive. export writes the merged root to a file (whole or not at all) or stdout;
// commit turns the writable layer into a new image layer on top of the container's image:
// the layer into the object store (verified as it streams, layer-put.ts), a config that is the
// base image's with the new diff_id, a history entry and the container's command, then
// `image.import` under the new name.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NatsConnection, ObjectStore } from 'nats';
import { agentApi, type ArchivePage } from '../shared/api/agent.js';
import { controllerApi } from '../shared/api/controller.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { IMAGE_NAME_RE } from '../shared/ids.js';
import { agent, api, CliError } from './client.js';
import { importedConfig, imageStore, readBlob } from './image-blobs.js';
import { hasObject, objectKey, putLayer } from './layer-put.js';

/**
 * The archive's pages as a stream, after its first page came (with the size and digest the node
 * computed over the whole); the stream errors unless the bytes hash to that digest.
 */
export async function pages(nc: NatsConnection, node: string, id: string, what: 'rootfs' | 'layer' | 'path', at?: { path: string; follow?: boolean }): Promise<{ stream: Readable; size: number; digest: string }> {
  const transfer = randomBytes(16).toString('hex');
  const where = at ? { path: at.path, ...(at.follow ? { follow: true } : {}) } : {};
  const hash = createHash('sha256');
  let offset = 0;
  // the first page waits for the node to write the whole archive
  const first = await agent(nc, node, agentApi.archive, { id, what, transfer, offset: 0, ...where }, 120000);
  const { size, digest } = first;
  let next: ArchivePage | undefined = first;
  const stream = new Readable({
    async read() {
      try {
        const p = next ?? await agent(nc, node, agentApi.archive, { id, what, transfer, offset, ...where });
        next = undefined;
        const b = Buffer.from(p.data, 'base64');
        hash.update(b);
        offset += b.length;
        if (p.end) {
          const got = `sha256:${hash.digest('hex')}`;
          if (offset !== size || got !== digest) throw new CliError(`the archive of ${id.slice(0, 12)} arrived with ${offset} bytes and digest ${got}, not the node's ${size} bytes ${digest}: refused`);
          this.push(b);
          this.push(null);
          return;
        }
        if (b.length === 0) throw new CliError(`node ${node} sent an empty page at ${offset} of ${size}: refused`);
        this.push(b);
      } catch (err) {
        this.destroy(err as Error);
      }
    },
  });
  return { stream, size, digest };
}

export async function exportContainer(nc: NatsConnection, ref: string, file: string): Promise<void> {
  const ctr = await api(nc, controllerApi.inspect, { ref });
  const { stream } = await pages(nc, ctr.node, ctr.id, 'rootfs');
  if (file === '-') { await pipeline(stream, process.stdout); return; }
  const tmp = `${file}.tsctl-${process.pid}`;
  try {
    await pipeline(stream, createWriteStream(tmp, { mode: 0o644 }));
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    const e = err as NodeJS.ErrnoException;
    if (e.code && e.path) throw new CliError(`export: ${e.path}: ${e.code}`);
    throw err;
  }
}

/** A container's writable layer into the object store (also `tsctl build`'s RUN); resolves with its diff_id. */
export async function commitLayer(nc: NatsConnection, os: ObjectStore, node: string, id: string): Promise<string> {
  const { stream, digest: diffId } = await pages(nc, node, id, 'layer');
  // putLayer checks the tar against the digest the node announced; the page stream checks the bytes
  if (await hasObject(os, diffId)) stream.destroy();
  else await putLayer({ nc, os }, stream, { gzip: false, diffId, fail: (m) => new CliError(`commit: ${m}`) });
  return diffId;
}

export interface CommitOptions { message?: string; author?: string; user: string }

export async function commitContainer(nc: NatsConnection, ref: string, name: string, o: CommitOptions): Promise<{ digest: string; layers: string[] }> {
  if (!IMAGE_NAME_RE.test(name)) throw new CliError(`invalid image name "${name}": letters, digits, _ . - or a reference like host:5000/team/app:1`);
  const ctr = await api(nc, controllerApi.inspect, { ref });
  const spec = ctr.spec;
  const os = await imageStore(nc);
  // the base: the config the container's image had when it was asked for
  const baseLayers = spec.layers?.length ? spec.layers : [spec.imageDigest];
  const baseConfig = spec.layers?.length ? await readBlob(os, spec.imageDigest, MAX_CONFIG_BYTES) : importedConfig(spec.imageDigest);
  const listed = configLayers(baseConfig);
  if (typeof listed === 'string' || listed.join() !== baseLayers.join()) throw new CliError(`commit: the config of ${spec.image} (${spec.imageDigest.slice(0, 19)}) does not list the container's layers`);
  const diffId = await commitLayer(nc, os, ctr.node, ctr.id);
  const cfg = JSON.parse(baseConfig.toString('utf8')) as { rootfs: { diff_ids: string[] }; history?: object[]; config?: Record<string, unknown>; created?: string; author?: string };
  const now = new Date().toISOString();
  cfg.rootfs.diff_ids = [...listed, diffId];
  cfg.history = [...(cfg.history ?? []), { created: now, created_by: `tsctl commit ${ctr.name}`, ...(o.message ? { comment: o.message } : {}) }];
  cfg.created = now;
  if (o.author) cfg.author = o.author;
  // docker commit keeps what the container ran
  const { Entrypoint: _e, ...kept } = cfg.config ?? {};
  cfg.config = { ...kept, Cmd: spec.args };
  const bytes = Buffer.from(JSON.stringify(cfg));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (!(await hasObject(os, digest))) await os.putBlob({ name: objectKey(digest), description: `image config ${digest}` }, bytes);
  await api(nc, controllerApi.imageImport, { name, digest, layers: cfg.rootfs.diff_ids, source: `commit:${ctr.name}`.slice(0, 512), user: o.user });
  return { digest, layers: cfg.rootfs.diff_ids };
}
