// The one way the agent keeps a JSON file: whole-file writes through a temp file and a
// rename, so a crash leaves the old or the new content, never half of one. No fsync: what
// these files guard against is an agent crash, after which the page cache still holds the
// write; a power loss takes every namespace, link and container with it, and the next
// start reconciles the state against that empty host.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SyncAdapter } from 'lowdb';

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dirname(file), { recursive: true });
    fd = openSync(tmp, 'w', 0o600);
  }
  try {
    writeSync(fd, JSON.stringify(value) + '\n');
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** The file's text, or undefined when it does not exist. */
export function readTextIfAny(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** lowdb's adapter over the same writes (compact JSON, temp file + rename). */
export function jsonAdapter<T>(file: string): SyncAdapter<T> {
  return {
    read: () => { const t = readTextIfAny(file); return t === undefined ? null : JSON.parse(t) as T; },
    write: (data: T) => writeJsonAtomic(file, data),
  };
}
