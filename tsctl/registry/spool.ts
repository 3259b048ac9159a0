// What makes a pull resumable: each layer blob's bytes, as they arrive from the registry,
// are appended to a file in this user's pull cache (`<digest>.part`), and the id of the
// object-store put they feed is written beside it (`<digest>.chunks`). A pull that was
// killed leaves both; the next pull purges the dead put's chunks, replays the part file
// through the same checks (the blob digest covers it and the rest together) and asks the
// registry only for the rest with an HTTP Range request. A refused blob's part is dropped
// (its bytes were wrong); a finished one's too. One pull owns a blob's files at a time
// (`<digest>.lock`, its pid): a second concurrent pull of it streams without a spool.
//
// The cache is $SWARMLITE_PULL_CACHE, else $XDG_CACHE_HOME/swarmlite/pulls, else
// ~/.cache/swarmlite/pulls: a directory of this user's, mode 0700; one that is not (a
// symlink, another owner) is not used and pulls are then not resumable.
import { closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, fstatSync, ftruncateSync, writev } from 'node:fs';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** `cwd`: the caller's directory, which a relative $SWARMLITE_PULL_CACHE is in (a warm tsctl runs in /). */
export function spoolDir(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.SWARMLITE_PULL_CACHE) return resolve(cwd, env.SWARMLITE_PULL_CACHE);
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'swarmlite', 'pulls');
}

/** Whether `pid` runs: a process killed and not yet reaped by its parent (a zombie) does not. */
const alive = (pid: number) => {
  try { process.kill(pid, 0); } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
  // a killed warm tsctl's parent is init, which may reap it late: till then kill(0) still answers
  try { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return st.slice(st.lastIndexOf(') ') + 2, st.lastIndexOf(') ') + 3) !== 'Z'; } catch { return true; }
};

/** One blob's spool: the bytes so far (`have`), appended to as the rest arrives. */
export class BlobSpool {
  private constructor(private readonly base: string, private fd: number, readonly have: number, readonly deadChunks: string | undefined) {}

  /** The blob's spool, or undefined when there is no usable cache or another pull holds it. */
  static open(dir: string, digest: string): BlobSpool | undefined {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) return undefined;
    } catch { return undefined; }
    const base = join(dir, digest.slice(7));
    if (!lock(`${base}.lock`)) return undefined;
    let dead: string | undefined;
    try {
      const fd = openSync(`${base}.chunks`, constants.O_RDONLY | constants.O_NOFOLLOW);
      try { dead = readFileSync(fd, 'utf8').trim(); } finally { closeSync(fd); }
    } catch { /* none */ }
    try {
      // O_APPEND: a resumed blob's bytes go after those kept (without it they went over the
      // start, and a blob resumed twice, or a deferred fill of a resumed one, was refused)
      const fd = openSync(`${base}.part`, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      const st = fstatSync(fd);
      if (!st.isFile()) { closeSync(fd); rmSync(`${base}.lock`, { force: true }); return undefined; }
      return new BlobSpool(base, fd, st.size, dead || undefined);
    } catch {
      rmSync(`${base}.lock`, { force: true });
      return undefined;
    }
  }

  /** The bytes kept so far, streamed (a resumed pull replays them). */
  readHave(): AsyncIterable<Buffer> { return this.readFirst(this.have); }

  /** The file's first `n` bytes (a deferred fill reads the whole verified blob back: image-pull.ts). */
  readFirst(n: number): AsyncIterable<Buffer> {
    if (n <= 0) return (async function* () { /* nothing */ })();
    return createReadStream(`${this.base}.part`, { start: 0, end: n - 1, highWaterMark: 1 << 20 });
  }

  /** Drops the bytes kept (the registry sent the whole blob again, or they were wrong). */
  reset(): void { ftruncateSync(this.fd, 0); }

  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  private writing?: Promise<void>;
  private failed?: Error;

  /**
   * Keeps `b` after the bytes so far. The write is the thread pool's (a synchronous write per
   * socket piece cost a pull ~60 ms of its main thread): what queues while one write runs goes
   * in the next, as one writev. Resolves at once unless 8 MiB wait (a slow disk holds the
   * transfer back rather than filling memory). A failed write makes the pull not resumable,
   * nothing more: the bytes kept before it stay a valid prefix.
   */
  async append(b: Uint8Array): Promise<void> {
    if (this.failed) return;
    this.queued.push(b);
    this.queuedBytes += b.length;
    this.writing ??= this.drain();
    if (this.queuedBytes > 8 << 20) await this.flush();
  }

  /** No write failed: the file holds every byte appended. */
  get intact(): boolean { return !this.failed; }

  /** Every byte appended so far is in the file (or its write failed). */
  async flush(): Promise<void> { while (this.writing) await this.writing; }

  private async drain(): Promise<void> {
    try {
      while (this.queued.length && !this.failed) {
        const batch = this.queued;
        this.queued = [];
        this.queuedBytes = 0;
        let total = batch.reduce((n, x) => n + x.length, 0);
        let parts: Uint8Array[] = batch;
        while (total > 0) {
          const n = await new Promise<number>((res, rej) => writev(this.fd, parts as NodeJS.ArrayBufferView[], (e, w) => (e ? rej(e) : res(w))));
          total -= n;
          if (total > 0) parts = rest(parts, n);
        }
      }
    } catch (err) {
      this.failed = err as Error;
      this.queued = [];
    } finally {
      this.writing = undefined;
    }
  }

  /** The object-store put these bytes feed: a killed pull's chunks are purged by the next one. */
  putStarted(id: string): void { writeFileSync(`${this.base}.chunks`, `${id}\n`, { mode: 0o600 }); }

  /** The put's chunks are gone (purged or made an object): forget them. */
  putSettled(): void { rmSync(`${this.base}.chunks`, { force: true }); }

  /** Done with the blob: `keep` leaves the part for a later pull to resume (an interruption). */
  async close(keep: boolean): Promise<void> {
    if (!keep) this.failed ??= new Error('closed');
    await this.flush();
    closeSync(this.fd);
    // the thread pool's: unlinking a just-written blob took a pull's main thread ~100 ms
    if (!keep) await rm(`${this.base}.part`, { force: true });
    rmSync(`${this.base}.lock`, { force: true });
  }
}

/** `parts` without their first `n` bytes (a short writev). */
function rest(parts: Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (n >= p.length) { n -= p.length; continue; }
    out.push(n ? p.subarray(n) : p);
    n = 0;
  }
  return out;
}

/** Takes `file` for this process; a lock whose process is gone is taken over. */
function lock(file: string): boolean {
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      let pid = 0;
      try { pid = Number(readFileSync(file, 'utf8').trim()); } catch { /* raced */ }
      if (pid > 0 && alive(pid)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}
