// tsctl cp on the node. Out of a container: Archives packs the path (what 'path'). Into one:
// the client stages its tar here page by page (agent.<node>.put, anyone who may run
// containers), then the controller, which knows who asks, has it unpacked (agent.<node>.copyin,
// the controller's alone) and the node appends ContainerFilesCopied. Both directions freeze the
// container while they walk its tree (Holds), so its processes cannot swap a directory for a
// symlink under the walk; a crash while frozen is undone at the next start.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { CopyInReply, CopyInRequest, PutPage } from '../shared/api/agent.js';
import { MAX_COPY_IN } from '../shared/api/agent.js';
import { conflict, invalid, notFound } from '../shared/rpc.js';
import { subjects } from '../shared/subjects.js';
import { failpoint } from './failpoints.js';
import { resolveInRoot, ResolveError } from './storage/resolve.js';
import { untar, UnsafeEntryError, TarFormatError } from './storage/untar.js';
import { TransferFiles } from './transfers.js';

const MAX_STAGED = 4;

export interface Freezer {
  freeze(id: string, frozen: boolean): Promise<void>;
  frozen(id: string): boolean;
}

/**
 * Freezes a container for the length of a copy, unless it is frozen already (paused: then it
 * stays as it was). The marker written before the freeze lets the next start thaw a container a
 * crash left frozen by a copy.
 */
export class Holds {
  constructor(private dir: string, private freezer: Freezer) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** At start: thaws what a crash left frozen mid-copy. Returns the ids thawed. */
  async recover(): Promise<string[]> {
    const done: string[] = [];
    for (const id of readdirSync(this.dir)) {
      try { await this.freezer.freeze(id, false); done.push(id); } catch { /* its groups are gone with it */ }
      rmSync(join(this.dir, id), { force: true });
    }
    return done;
  }

  async during<T>(id: string, work: () => Promise<T>): Promise<T> {
    let mine = false;
    try { mine = !this.freezer.frozen(id); } catch { mine = false; }
    if (mine) {
      writeFileSync(join(this.dir, id), '');
      await this.freezer.freeze(id, true);
      failpoint('copy:frozen');
    }
    try { return await work(); } finally {
      if (mine) {
        await this.freezer.freeze(id, false).catch((err) => console.error(`agent: cp ${id.slice(0, 12)}: thaw: ${(err as Error).message}`));
        rmSync(join(this.dir, id), { force: true });
      }
    }
  }
}

interface Staged { file: string; size: number; used: number }

export interface CopyInParts {
  node: string;
  /** The container's merged root as mounted on this node, or undefined. */
  rootfs(id: string): string | undefined;
  holds: Holds;
  log: { append(subject: string, type: 'ContainerFilesCopied', entity: string, data: { user: string; dest: string; entries: number; bytes: number; digest: string }): Promise<unknown> };
}

export class CopiesIn {
  private staged: TransferFiles<Staged>;

  constructor(private dir: string, private p: CopyInParts) {
    this.staged = new TransferFiles(dir);
  }

  async put(r: PutPage): Promise<{ received: number }> {
    let s = this.staged.get(r.transfer);
    if (!s) {
      if (r.offset !== 0) throw notFound(`transfer ${r.transfer} is not open (it ended or expired): start again`);
      if (this.staged.size >= MAX_STAGED) throw conflict(`this node already receives ${MAX_STAGED} copies: try again shortly`);
      s = { file: join(this.dir, `${r.transfer}.tar`), size: 0, used: Date.now() };
      writeFileSync(s.file, '', { mode: 0o600 });
      this.staged.set(r.transfer, s);
    }
    if (r.offset !== s.size) throw conflict(`transfer ${r.transfer}: page at ${r.offset}, expected ${s.size}`);
    const b = Buffer.from(r.data, 'base64');
    if (s.size + b.length > MAX_COPY_IN) { this.staged.drop(r.transfer); throw invalid(`a copy into a container is at most ${MAX_COPY_IN} bytes`); }
    const fh = await open(s.file, 'r+');
    try { await fh.write(b, 0, b.length, s.size); } finally { await fh.close(); }
    s.size += b.length;
    s.used = Date.now();
    return { received: s.size };
  }

  async copyIn(r: CopyInRequest): Promise<CopyInReply> {
    const s = this.staged.take(r.transfer);
    if (!s) throw notFound(`transfer ${r.transfer} is not staged on node ${this.p.node} (it expired or was never sent)`);
    try {
      if (s.size !== r.size) throw conflict(`transfer ${r.transfer}: ${s.size} bytes arrived, the client sent ${r.size}`);
      const digest = await hashFile(s.file);
      if (digest !== r.digest) throw conflict(`transfer ${r.transfer}: the bytes hash to ${digest}, not the client's ${r.digest}`);
      const root = this.p.rootfs(r.id);
      if (!root) throw conflict(`container ${r.id.slice(0, 12)} has no mounted root on node ${this.p.node} (it was removed, or the host restarted since it ran)`);
      const done = await this.p.holds.during(r.id, async () => {
        // DEST an existing directory: the copy goes into it; else DEST names the copy, in its parent
        const whole = resolveInRoot(root, r.dest, { follow: true });
        const target = join(whole.dir, whole.name);
        const st = existsSync(target) ? statSync(target) : undefined;
        const owners = r.archive === true;
        if (st?.isDirectory()) {
          const path = `/${[...whole.parts, whole.name].filter(Boolean).join('/')}`;
          return { path: r.name ? `${path.replace(/\/$/, '')}/${r.name}` : path, x: await untar(s.file, target, { plain: true, owners }) };
        }
        if (st) throw conflict(`${r.dest} exists in the container and is not a directory`);
        if (!r.name) throw notFound(`${r.dest}: no such directory in the container (an archive from stdin goes into a directory)`);
        if (!whole.name) throw conflict(`${r.dest}: cannot copy onto the container's root`);
        if (!existsSync(whole.dir) || !statSync(whole.dir).isDirectory()) throw notFound(`${r.dest}: its parent directory does not exist in the container`);
        return { path: `/${[...whole.parts, whole.name].join('/')}`, x: await untar(s.file, whole.dir, { plain: true, owners, rename: { from: r.name, to: whole.name } }) };
      }).catch((err) => {
        if (err instanceof ResolveError || err instanceof UnsafeEntryError || err instanceof TarFormatError) throw invalid(`cp: ${err.message}`);
        throw err;
      });
      await this.p.log.append(subjects.state(this.p.node, r.id), 'ContainerFilesCopied', r.id, { user: r.by, dest: done.path, entries: done.x.entries, bytes: done.x.bytes, digest });
      return { entries: done.x.entries, bytes: done.x.bytes, path: done.path };
    } finally { rmSync(s.file, { force: true }); }
  }
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b as Buffer);
  return `sha256:${h.digest('hex')}`;
}
