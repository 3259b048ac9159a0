// tsctl cp, as docker cp: CONTAINER:SRC DEST copies out (DEST "-" writes the tar to stdout),
// SRC CONTAINER:DEST copies in (SRC "-" reads a tar from stdin). The node freezes the container
// while it walks its tree and resolves the path as the container would (agent/copy.ts); here
// the tar is packed with node-tar and unpacked by local-untar.ts (links kept as they are,
// nothing written through one).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, lstatSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { scratchDir } from './scratch.js';
import { pipeline } from 'node:stream/promises';
import type { NatsConnection } from 'nats';
import * as tar from 'tar';
import { agentApi, MAX_COPY_IN, type CopyInReply } from '../shared/api/agent.js';
import { controllerApi } from '../shared/api/controller.js';
import { agent, api, CliError } from './client.js';
import { pages } from './container-archive.js';
import { untarLocal } from './local-untar.js';
import { KEEPS_ROOT } from '../shared/reducer.js';

/** "box:/etc/hosts" → container and path; a local path (no colon before a slash) → undefined. */
export function splitRef(arg: string): { ref: string; path: string } | undefined {
  const i = arg.indexOf(':');
  if (i <= 0) return undefined;
  // ./a:b and /x:y are local paths, as docker reads them
  if (arg.slice(0, i).includes('/')) return undefined;
  return { ref: arg.slice(0, i), path: arg.slice(i + 1) };
}

const PAGE = 512 * 1024;

export async function copyOut(nc: NatsConnection, ref: string, path: string, dest: string, o: { follow?: boolean }): Promise<void> {
  if (!path.startsWith('/')) throw new CliError(`cp: ${path}: the path in the container must be absolute`);
  const ctr = await api(nc, controllerApi.inspect, { ref });
  if (!KEEPS_ROOT.has(ctr.state)) throw new CliError(`cp: container ${ctr.name} is ${ctr.state}: it has no root to copy from or into`);
  const { stream } = await pages(nc, ctr.node, ctr.id, 'path', { path, ...(o.follow ? { follow: true } : {}) });
  if (dest === '-') {
    if (process.stdout.isTTY) { stream.destroy(); throw new CliError('cp: refusing to write an archive to a terminal: redirect stdout'); }
    await pipeline(stream, process.stdout);
    return;
  }
  const target = resolve(dest);
  const into = existsSync(target) && statSync(target).isDirectory();
  if (!into && !existsSync(dirname(target))) throw new CliError(`cp: ${dirname(dest)}: no such directory`);
  // a new name: unpacked beside it first, then renamed, so a failure leaves nothing half-made
  const at = into ? target : mkdtempSync(join(dirname(target), '.tsctl-cp-'));
  try {
    await untarLocal(stream, at);
    if (!into) {
      const [top] = readdirSync(at);
      if (!top) throw new CliError(`cp: ${path}: the archive was empty`);
      renameSync(join(at, top), target);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code && e.path) throw new CliError(`cp: ${e.path}: ${e.code}`);
    throw err;
  } finally {
    if (!into) rmSync(at, { recursive: true, force: true });
  }
}

export async function copyIn(nc: NatsConnection, src: string, ref: string, dest: string, o: { archive?: boolean; user: string }): Promise<CopyInReply> {
  if (!dest.startsWith('/')) throw new CliError(`cp: ${dest}: the path in the container must be absolute`);
  const ctr = await api(nc, controllerApi.inspect, { ref });
  if (!KEEPS_ROOT.has(ctr.state)) throw new CliError(`cp: container ${ctr.name} is ${ctr.state}: it has no root to copy from or into`);
  const tmp = scratchDir('cp');
  const file = join(tmp, 'in.tar');
  try {
    let name: string | undefined;
    if (src === '-') {
      await pipeline(process.stdin, createWriteStream(file, { mode: 0o600 }));
    } else {
      const from = resolve(src);
      try { lstatSync(from); } catch { throw new CliError(`cp: ${src}: no such file or directory`); }
      name = basename(from);
      // the link itself, never what it points to; root's owners unless -a (docker's default)
      await pipeline(tar.c({ cwd: dirname(from), follow: false, portable: !o.archive }, [name]), createWriteStream(file, { mode: 0o600 }));
    }
    const size = statSync(file).size;
    if (size > MAX_COPY_IN) throw new CliError(`cp: the archive is ${size} bytes, more than ${MAX_COPY_IN}`);
    if (size < 1024) throw new CliError('cp: the archive from stdin is not a tar (shorter than its end marker)');
    const h = createHash('sha256');
    for await (const b of createReadStream(file)) h.update(b as Buffer);
    const digest = `sha256:${h.digest('hex')}`;
    const transfer = randomBytes(16).toString('hex');
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(PAGE);
      for (let offset = 0; offset < size;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(PAGE, size - offset), offset);
        await agent(nc, ctr.node, agentApi.put, { transfer, offset, data: buf.subarray(0, bytesRead).toString('base64') });
        offset += bytesRead;
      }
    } finally { await fh.close(); }
    return await api(nc, controllerApi.copyIn, {
      ref: ctr.id, transfer, size, digest, dest, ...(name ? { name } : {}), ...(o.archive ? { archive: true } : {}), user: o.user,
    }, 120000);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
