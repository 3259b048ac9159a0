// Unpacks a tar that came out of a container (tsctl cp) into a local directory. node-tar
// parses; the writes are ours because cp must keep symlinks as they are (docker cp keeps
// "/etc/shadow" as the link's target, node-tar's extractor rewrites or drops such links),
// and keeping them is only safe if nothing is ever written through one: every directory
// above an entry is lstat'ed and must be a real directory, files are created O_EXCL|O_NOFOLLOW
// after whatever stood there is removed, and device nodes, FIFOs and ".." paths are refused.
import { constants, lstatSync, mkdirSync, rmSync, symlinkSync, linkSync, chmodSync, lutimesSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { CliError } from './client.js';

const lstatOr = (p: string): Stats | undefined => { try { return lstatSync(p); } catch { return undefined; } };

function components(path: string): string[] {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  if (path.startsWith('/') || parts.includes('..')) throw new CliError(`cp: the archive's entry ${JSON.stringify(path)} would leave the target: refused`);
  return parts;
}

/** Extracts `input` (a tar stream) into the existing directory `root`. */
export async function untarLocal(input: Readable, root: string): Promise<number> {
  const dirs = new Set<string>(['']);
  let n = 0;
  const dirModes: [string, number][] = [];
  const parentsOf = (parts: string[], entry: string) => {
    for (let i = 0; i < parts.length - 1; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      if (dirs.has(rel)) continue;
      const st = lstatOr(join(root, rel));
      if (!st) mkdirSync(join(root, rel), { mode: 0o755 });
      else if (!st.isDirectory()) throw new CliError(`cp: ${entry}: ${rel} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}: refused`);
      dirs.add(rel);
    }
  };
  const clear = (p: string, keepDir: boolean) => {
    const st = lstatOr(p);
    if (st && !(keepDir && st.isDirectory())) rmSync(p, { recursive: true, force: true });
    return st?.isDirectory() === true && keepDir;
  };
  const parser = new tar.Parser({ strict: true });
  const done = new Promise<void>((resolve, reject) => {
    let chain = Promise.resolve();
    parser.on('entry', (e: tar.ReadEntry) => {
      e.pause();
      chain = chain.then(async () => {
        const parts = components(e.path);
        if (!parts.length) { e.resume(); return; }
        parentsOf(parts, e.path);
        const p = join(root, ...parts);
        const mode = (e.mode ?? 0o644) & 0o7777;
        switch (e.type) {
          case 'Directory':
            if (!clear(p, true)) mkdirSync(p, { mode: 0o700 });
            dirs.add(parts.join('/'));
            // last, deepest first: a read-only directory must still take its children
            dirModes.push([p, mode]);
            e.resume();
            break;
          case 'File': case 'OldFile': case 'ContiguousFile': {
            clear(p, false);
            const fh = await open(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
            try {
              await pipeline(e, new Writable({ write(chunk: Buffer, _enc, cb) { fh.write(chunk).then(() => cb(), cb); } }));
              await fh.chmod(mode);
              if (e.mtime) await fh.utimes(e.mtime, e.mtime);
            } finally { await fh.close(); }
            break;
          }
          case 'SymbolicLink':
            clear(p, false);
            symlinkSync(String(e.linkpath), p);
            if (e.mtime) try { lutimesSync(p, e.mtime, e.mtime); } catch { /* some filesystems */ }
            e.resume();
            break;
          case 'Link': {
            const target = components(String(e.linkpath));
            parentsOf([...target, ''], e.path);
            const st = lstatOr(join(root, ...target));
            if (!st?.isFile()) throw new CliError(`cp: ${e.path}: a hard link to ${JSON.stringify(e.linkpath)}, which is not a file of the archive: refused`);
            clear(p, false);
            linkSync(join(root, ...target), p);
            e.resume();
            break;
          }
          default:
            // device nodes and FIFOs are the container's, not this machine's to make
            e.resume();
            return;
        }
        n++;
      });
      chain.catch((err) => { parser.abort(err as Error); reject(err); });
    });
    parser.on('end', () => { chain.then(resolve, reject); });
    parser.on('error', reject);
  });
  await Promise.all([pipeline(input, parser).catch((err) => { throw err instanceof CliError ? err : new CliError(`cp: the archive is not a tar: ${(err as Error).message}`); }), done]);
  for (const [p, mode] of dirModes.reverse()) chmodSync(p, mode);
  return n;
}
