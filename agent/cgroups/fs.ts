// The thin I/O layer: every cgroup file access goes through here so every failure
// becomes a CgroupError with path and errno. Synchronous on purpose: cgroupfs is in
// memory, each call is one syscall, and the agent serialises work per container.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CgroupError } from './errors.js';
import type { Write } from './types.js';

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw CgroupError.from('read', path, e);
  }
}

/** undefined when the file does not exist (an optional kernel feature). */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw CgroupError.from('read', path, e);
  }
}

/** A single-number file; 'max' (v2) and absurdly large values (v1's "unlimited") map to null. */
export function readNumber(path: string): number | null {
  return parseLimit(readText(path));
}

export function parseLimit(text: string): number | null {
  const t = text.trim();
  if (t === 'max' || t === '-1') return null;
  const n = Number(t);
  if (!Number.isFinite(n)) return null;
  // v1 reports "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (~2^63); nothing real is that big.
  return n >= 2 ** 62 ? null : n;
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control, pids.events). */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^-?\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** pid per line, as in cgroup.procs. */
export function parsePids(text: string): number[] {
  return text.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

export function writeValue(dir: string, w: Write): void {
  const path = join(dir, w.file);
  try {
    // One write(2) of the whole value: cgroupfs parses each write on its own.
    writeFileSync(path, w.value);
  } catch (e) {
    const err = CgroupError.from(`write ${JSON.stringify(w.value)} to`, path, e);
    throw err;
  }
}

export function writeAll(dir: string, writes: readonly Write[]): void {
  for (const w of writes) writeValue(dir, w);
}

export function listFiles(dir: string): Set<string> {
  try {
    return new Set(readdirSync(dir));
  } catch (e) {
    throw CgroupError.from('list', dir, e);
  }
}

/** Sub-directories (child groups) of a group; none when the group does not exist. */
export function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw CgroupError.from('list', dir, e);
  }
}

/** mkdir that tolerates EEXIST; returns whether it created the directory. */
export function makeDir(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw CgroupError.from('mkdir', path, e);
  }
}

/** rmdir that tolerates ENOENT (already gone). cgroupfs removes a group's files with it. */
export function removeDir(path: string): void {
  try {
    rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw CgroupError.from('rmdir', path, e);
  }
}

/** removeDir through the thread pool: removing a memory group can wait in the kernel. */
export async function removeDirAsync(path: string): Promise<void> {
  try {
    await rmdir(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw CgroupError.from('rmdir', path, e);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Pure: usage less the page cache the kernel can drop first (inactive file pages), as
 * docker stats reports it; the raw counter would show a container's reads as its memory.
 */
export function workingSet(usage: number, memoryStat: string | undefined, key: string): number {
  const inactive = memoryStat ? parseKeyValues(memoryStat)[key] ?? 0 : 0;
  return inactive < usage ? usage - inactive : usage;
}
