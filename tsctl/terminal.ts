// -t / -i on tsctl's side: the local terminal in raw mode while a session runs (every key,
// ^C included, goes to the container's terminal, whose line discipline decides), stdin
// forwarded on the session's stdin subject, the window size sent at the start and on every
// SIGWINCH, docker's detach keys (ctrl-p ctrl-q), and the terminal put back as it was on
// every way out: the end, an error, a detach, a signal, process.exit.
import { spawnSync } from 'node:child_process';
import type { NatsConnection } from 'nats';
import { headers as natsHeaders } from 'nats';
import { CliError } from './client.js';

/** stdin goes out in pieces of at most this much (a NATS message is at most 1 MiB). */
const STDIN_CHUNK = 64 << 10;

/** docker's default detach keys: ctrl-p ctrl-q. */
export const DETACH_KEYS = Buffer.from([0x10, 0x11]);

// ctrl-@ is NUL; ctrl-[ to ctrl-_ follow ctrl-z (27-31)
const CTRL_PUNCT = '@[\\]^_';

/**
 * `--detach-keys` as docker reads it: comma-separated keys, each one character or `ctrl-X`
 * with X one of a-z @ [ \ ] ^ _ (ctrl-a is 1, ctrl-@ 0, ctrl-_ 31). Pure; a bad spec is a
 * one-line message naming the key, as a typo must not leave a session one cannot leave.
 */
export function parseDetachKeys(spec: string): Buffer {
  if (spec === '') throw new CliError('invalid --detach-keys "": give keys such as ctrl-p,ctrl-q');
  const out: number[] = [];
  for (const key of spec.split(',')) {
    const ctrl = /^ctrl-(.)$/i.exec(key);
    if (ctrl) {
      const c = ctrl[1]!.toLowerCase();
      if (c >= 'a' && c <= 'z') out.push(c.charCodeAt(0) - 96);
      else if (CTRL_PUNCT.includes(c)) out.push(CTRL_PUNCT.indexOf(c) === 0 ? 0 : 26 + CTRL_PUNCT.indexOf(c));
      else throw new CliError(`invalid --detach-keys "${spec}": "${key}" is not ctrl- followed by a-z, @, [, \\, ], ^ or _`);
      continue;
    }
    if (key.length !== 1 || key.charCodeAt(0) > 0x7e) throw new CliError(`invalid --detach-keys "${spec}": "${key}" is neither one character nor ctrl-X`);
    out.push(key.charCodeAt(0));
  }
  return Buffer.from(out);
}

/** The --detach-keys flag of run, exec, start and attach: absent means docker's default. */
export const detachKeysFlag = (spec: string | undefined): Buffer | undefined => (spec === undefined ? undefined : parseDetachKeys(spec));

/**
 * Finds the detach sequence in typed input, across chunks. Pure. What could still begin the
 * sequence is held back until the next key shows whether it is the sequence (then nothing of
 * it is sent) or not (then the bytes that cannot begin it are sent), as docker's escape proxy
 * does; for a sequence that repeats itself (a,a,b) the held bytes are re-matched, so "aaab"
 * detaches.
 */
export class DetachScanner {
  private held: number[] = [];
  constructor(private keys: Buffer = DETACH_KEYS) {}

  /** What to forward of `chunk`, and whether the sequence was completed (the rest is dropped). */
  feed(chunk: Buffer): { forward: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      this.held.push(b);
      while (this.held.length && !this.held.every((x, i) => x === this.keys[i])) out.push(this.held.shift()!);
      if (this.held.length === this.keys.length) { this.held = []; return { forward: Buffer.from(out), detach: true }; }
    }
    return { forward: Buffer.from(out), detach: false };
  }
}

export interface Size { rows: number; cols: number }

/** The local window's size, or undefined when neither stdout nor stderr is a terminal. */
export function localSize(): Size | undefined {
  for (const s of [process.stdout, process.stderr]) {
    if (!s.isTTY) continue;
    // node's size of the stream, refreshed by its own SIGWINCH listener (see LocalTerminal.start)
    const [cols, rows] = s.getWindowSize();
    if (rows! > 0 && cols! > 0) return { rows: rows!, cols: cols! };
  }
  return undefined;
}

/**
 * Clears OPOST on the terminal of stdin. Node has no termios call and tsctl loads no FFI, so
 * stty (coreutils, on every Linux) does it on our fd 0; without it lines end \r\r\n, no worse.
 */
function noOutputProcessing(): void {
  try { spawnSync('stty', ['-opost'], { stdio: [0, 'ignore', 'ignore'], timeout: 2000 }); } catch { /* not there: as before */ }
}

export interface SessionIo {
  /** how the session ended by the user's side: 'detach' (ctrl-p ctrl-q) or 'eof' (stdin closed) */
  onDetach: () => void;
}

/**
 * One session's local side. `start` puts the terminal in raw mode (with -t and a terminal on
 * stdin) and begins forwarding; `stop` undoes everything and is safe to call more than once.
 */
export class LocalTerminal {
  private raw = false;
  private stopped = false;
  private scanner: DetachScanner;
  private onData = (chunk: Buffer) => this.data(chunk);
  private onEnd = () => this.eof();
  // after node's own SIGWINCH listener has refreshed the size getWindowSize reads (the next turn)
  private onResize = () => { setImmediate(() => this.sendSize()); };
  private onSignal = (sig: NodeJS.Signals) => { this.stop(); process.kill(process.pid, sig); };
  private onExit = () => this.restore();

  private subject = '';

  constructor(private nc: NatsConnection, private o: { tty: boolean; interactive: boolean; detachKeys?: Buffer }, public io: SessionIo) {
    this.scanner = new DetachScanner(o.detachKeys);
  }

  /**
   * Raw mode before the session is asked for: its first output (a shell's prompt) can come
   * before the answer, and what is typed after it must not be echoed or read as ^C locally.
   * Keys typed meanwhile wait in stdin until `start`.
   */
  rawMode(): void {
    process.once('exit', this.onExit);
    if (this.o.tty && this.o.interactive && process.stdin.isTTY && !this.raw) {
      process.stdin.setRawMode(true);
      this.raw = true;
      // libuv's raw mode keeps output processing (OPOST, ONLCR): the container's pty already
      // turned each \n into \r\n, so every line would end \r\r\n and a full-screen program that
      // moves down with \n would land in column 0. As docker's (moby/term MakeRaw), output is
      // passed as it is; setRawMode(false) puts back the whole saved state, OPOST included.
      noOutputProcessing();
    }
  }

  start(subject: string): void {
    this.subject = subject;
    this.rawMode();
    if (this.o.tty) {
      // SIGWINCH arrives only while someone listens. node's tty streams, made on first use,
      // listen too and refresh the size getWindowSize returns: made first, they refresh first
      void process.stdout.isTTY; void process.stderr.isTTY;
      process.on('SIGWINCH', this.onResize);
      for (const s of ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.once(s, this.onSignal);
    }
    if (this.o.interactive) {
      process.stdin.on('data', this.onData);
      process.stdin.on('end', this.onEnd);
      process.stdin.resume();
    }
  }

  /** Sends the current window size (the agent turns it into TIOCSWINSZ on the pty master). */
  sendSize(): void {
    const s = localSize();
    if (!s || this.stopped) return;
    const h = natsHeaders();
    h.set('resize', `${s.rows} ${s.cols}`);
    this.nc.publish(this.subject, new Uint8Array(0), { headers: h });
  }

  private data(chunk: Buffer): void {
    if (this.stopped) return;
    let fwd = chunk;
    let detach = false;
    // detach keys only mean something on a terminal of one's own (docker: with -it)
    if (this.o.tty) ({ forward: fwd, detach } = this.scanner.feed(chunk));
    for (let i = 0; i < fwd.length; i += STDIN_CHUNK) this.nc.publish(this.subject, fwd.subarray(i, i + STDIN_CHUNK));
    if (detach) { this.stop(); this.io.onDetach(); }
  }

  private eof(): void {
    if (this.stopped) return;
    const h = natsHeaders();
    h.set('eof', '1');
    this.nc.publish(this.subject, new Uint8Array(0), { headers: h });
  }

  private restore(): void {
    if (this.raw) { try { process.stdin.setRawMode(false); } catch { /* the terminal is gone */ } this.raw = false; }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.restore();
    process.off('SIGWINCH', this.onResize);
    for (const s of ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.off(s, this.onSignal);
    process.off('exit', this.onExit);
    process.stdin.off('data', this.onData);
    process.stdin.off('end', this.onEnd);
    process.stdin.pause();
    if (this.o.interactive) process.stdin.destroy();
  }
}
