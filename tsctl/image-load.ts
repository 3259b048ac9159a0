// `tsctl image load -i FILE`: a `docker save` archive (manifest.json, legacy or OCI blobs)
// or an OCI image layout tar (index.json), gzipped or not, layers gzipped or plain. The
// archive is unpacked into a private temp dir (node-tar: entries with ".." or absolute paths
// are skipped, only files, dirs and symlinks), every path it names must resolve inside that
// dir, and each layer streams into the object store verified like a pulled one (layer-put.ts).
import { rmSync, openSync, readSync, closeSync, realpathSync, statSync, readFileSync, createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, sep } from 'node:path';
import { scratchDir } from './scratch.js';
import { StorageType, type NatsConnection } from 'nats';
import * as tar from 'tar';
import { CliError } from './client.js';
import { importHeld } from './image-hold.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { IMAGE_NAME_RE } from '../shared/ids.js';
import { configLayers, MAX_CONFIG_BYTES } from '../shared/image-config.js';
import { parseManifest, choosePlatform, layerCompression, ociArch, MAX_MANIFEST_BYTES } from './registry/manifest.js';
import { putLayer, hasObject, objectKey } from './layer-put.js';

interface Planned { name?: string; config: Buffer; configDigest: string; layers: { path: string; gzip: boolean; blob?: { digest: string; size: number } }[] }

export interface LoadResult { name: string; digest: string; layers: string[] }

export async function loadImages(nc: NatsConnection, file: string, o: { name?: string; user: string }): Promise<LoadResult[]> {
  try { statSync(file); } catch (err) { throw new CliError(`cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`); }
  const dir = scratchDir('load');
  const fail = (m: string) => new CliError(`${file}: ${m}`);
  try {
    try {
      await tar.x({ file, cwd: dir, strict: false, preservePaths: false, filter: (_p, e) => ['File', 'OldFile', 'Directory', 'SymbolicLink'].includes((e as tar.ReadEntry).type) });
    } catch (err) {
      throw fail(`not a tar archive (${(err as Error).message})`);
    }
    const inside = (rel: string): string => {
      let p: string;
      try { p = realpathSync(join(dir, rel)); } catch { throw fail(`names "${rel.slice(0, 200)}", which the archive does not hold`); }
      const root = realpathSync(dir);
      if (p !== root && !p.startsWith(root + sep)) throw fail(`"${rel.slice(0, 200)}" leads outside the archive: refused`);
      return p;
    };
    const read = (rel: string, max: number): Buffer => {
      const p = inside(rel);
      if (statSync(p).size > max) throw fail(`"${rel}" is larger than ${max} bytes: refused`);
      return readFileSync(p);
    };
    const plans = existsIn(dir, 'manifest.json') ? dockerSave(read, inside) : existsIn(dir, 'index.json') ? ociLayout(read, fail) : (() => { throw fail('neither a docker save archive (manifest.json) nor an OCI image layout (index.json)'); })();
    if (!plans.length) throw fail('holds no image');
    if (o.name && plans.length > 1) throw fail(`holds ${plans.length} images: --name names one`);
    const os = await nc.jetstream().views.os(IMAGE_BUCKET, { storage: StorageType.File });
    const out: LoadResult[] = [];
    for (const p of plans) {
      // docker's short form: docker.io/library/app:1 is app:1, as `docker load` prints it
      const name = o.name ?? p.name?.replace(/^docker\.io\//, '').replace(/^library\//, '');
      if (!name) throw fail(`image ${p.configDigest.slice(0, 19)} has no tag: give --name`);
      if (!IMAGE_NAME_RE.test(name)) throw fail(`invalid image name "${name}"`);
      const diffIds = configLayers(p.config);
      if (typeof diffIds === 'string') throw fail(`config ${p.configDigest}: ${diffIds}`);
      if (diffIds.length !== p.layers.length) throw fail(`the manifest has ${p.layers.length} layer(s) but its config lists ${diffIds.length}: refused`);
      // a layer found in the store stays there until the import names it (image rm of another image sharing it, a fill, gc)
      await importHeld(nc, [p.configDigest, ...diffIds], o.user, async () => {
        for (const [i, l] of p.layers.entries()) {
          if (await hasObject(os, diffIds[i])) continue;
          const path = inside(l.path);
          await putLayer({ nc, os }, createReadStream(path), { gzip: l.gzip, diffId: diffIds[i], fail, ...(l.blob ? { blob: l.blob } : {}) });
        }
        if (!(await hasObject(os, p.configDigest))) await os.putBlob({ name: objectKey(p.configDigest), description: `image config ${p.configDigest}` }, p.config);
        return { name, digest: p.configDigest, layers: diffIds, source: `load:${file}`.slice(0, 512) };
      });
      out.push({ name, digest: p.configDigest, layers: diffIds });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  function existsIn(d: string, f: string): boolean { try { statSync(join(d, f)); return true; } catch { return false; } }

  function gzipped(path: string): boolean {
    const fd = openSync(path, 'r');
    try { const b = Buffer.alloc(2); return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b; } finally { closeSync(fd); }
  }

  /** docker save: manifest.json = [{Config, RepoTags, Layers}] (legacy <id>/layer.tar or blobs/sha256/<hex>). */
  function dockerSave(read: (r: string, m: number) => Buffer, inside: (r: string) => string): Planned[] {
    let m: unknown;
    try { m = JSON.parse(read('manifest.json', MAX_MANIFEST_BYTES).toString('utf8')); } catch (err) { if (err instanceof CliError) throw err; throw fail('manifest.json is not JSON'); }
    if (!Array.isArray(m)) throw fail('manifest.json is not a list');
    return m.map((e: { Config?: unknown; RepoTags?: unknown; Layers?: unknown }, i) => {
      if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) throw fail(`manifest.json[${i}] has no Config and Layers`);
      const config = read(e.Config, MAX_CONFIG_BYTES);
      const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
      const tags = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t): t is string => typeof t === 'string') : [];
      return { ...(tags[0] ? { name: tags[0] } : {}), config, configDigest, layers: (e.Layers as string[]).map((path) => ({ path, gzip: gzipped(inside(path)) })) };
    });
  }

  /** OCI image layout: index.json ▸ (index ▸) manifest ▸ config + layers, every blob checked against its digest. */
  function ociLayout(read: (r: string, m: number) => Buffer, failWith: (m: string) => Error): Planned[] {
    const blob = (digest: string, max: number): Buffer => {
      if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw failWith(`blob digest "${digest.slice(0, 80)}" is not sha256`);
      const b = read(`blobs/sha256/${digest.slice(7)}`, max);
      const got = `sha256:${createHash('sha256').update(b).digest('hex')}`;
      if (got !== digest) throw failWith(`blob ${digest} holds bytes with digest ${got}: refused`);
      return b;
    };
    const index = parseManifest(read('index.json', MAX_MANIFEST_BYTES), 'application/vnd.oci.image.index.v1+json');
    if (typeof index === 'string' || index.kind !== 'index') throw failWith(`index.json: ${typeof index === 'string' ? index : 'not an index'}`);
    const plans: Planned[] = [];
    for (const top of index.manifests) {
      const ann = (top as { annotations?: Record<string, string> }).annotations ?? {};
      let m = parseManifest(blob(top.digest, MAX_MANIFEST_BYTES), top.mediaType);
      if (typeof m === 'string') throw failWith(`manifest ${top.digest}: ${m}`);
      if (m.kind === 'index') {
        const pick = choosePlatform(m.manifests, 'linux', ociArch());
        if (!pick) throw failWith(`index ${top.digest} has no linux/${ociArch()} image`);
        m = parseManifest(blob(pick.digest, MAX_MANIFEST_BYTES), pick.mediaType);
        if (typeof m === 'string' || m.kind !== 'image') throw failWith(`manifest ${pick.digest}: ${typeof m === 'string' ? m : 'an index inside an index'}`);
      }
      const config = blob(m.config.digest, MAX_CONFIG_BYTES);
      const layers = m.layers.map((l) => {
        const c = layerCompression(l.mediaType);
        if (c !== 'none' && c !== 'gzip') throw failWith(`layer ${l.digest}: ${c}`);
        return { path: `blobs/sha256/${l.digest.slice(7)}`, gzip: c === 'gzip', blob: { digest: l.digest, size: l.size } };
      });
      const name = ann['io.containerd.image.name'] ?? ann['org.opencontainers.image.ref.name'];
      plans.push({ ...(name && name.includes(':') ? { name } : {}), config, configDigest: m.config.digest, layers });
    }
    return plans;
  }
}
