// tsctl exec on this node: runs the process through the container host (sl-monitor joins
// the container), appends who ran what (ExecStarted / ExecFailed) and its end (ExecExited),
// streams its output as a container's is streamed (logs.<node>.<execId>, the exec's own
// framed log file) and ends the stream with an `eof` frame that carries the exit code.
// With -i, what the client publishes on stdin.<node>.<user>.<execId> goes to the process's
// stdin. With -t the process has a pty (native/src/monitor/monitor_tty.c): its output comes
// as stdout frames, stdin goes into the master, and a message with a `resize: ROWS COLS`
// header on the same subject becomes a TIOCSWINSZ through the monitor's resize pipe.
import { Socket } from 'node:net';
import { closeSync } from 'node:fs';
import { headers as natsHeaders, type NatsConnection, type Subscription } from 'nats';
import type { Appender } from '../shared/nats/log.js';
import type { ExecReply, ExecRequest } from '../shared/api/agent.js';
import { subjects } from '../shared/subjects.js';
import { resizeRecord } from '../native/spawn.js';
import { parseResize } from './tty.js';
import { ContainerError, type ContainerHost } from './host/container-host.js';
import { LogStreamer } from './logs.js';
import { isHealthExec } from './health.js';

/**
 * At most this much stdin waiting for one process (core NATS has no back-pressure, so the
 * agent buffers what the process has not read yet); beyond it the input is cut, the process
 * gets its EOF and the client a line on stderr saying so.
 */
const STDIN_BUFFER_MAX = 32 << 20;

export class Execs {
  private where = new Map<string, string>(); // execId → container id, while it runs
  private streamer: LogStreamer;

  constructor(private nc: NatsConnection, private node: string, private host: ContainerHost, private log: Appender) {
    this.streamer = new LogStreamer(nc, node, (execId) => host.execLogPath(this.where.get(execId) ?? '', execId));
  }

  async start(r: ExecRequest): Promise<ExecReply> {
    const p = { args: r.args, ...(r.env ? { env: r.env } : {}), ...(r.workdir ? { workdir: r.workdir } : {}),
      ...(r.processUser ? { user: r.processUser } : {}), stdin: r.interactive === true, ...(r.tty ? { tty: r.tty } : {}) };
    // subscribed before the process can read, so no input is lost
    let input: Subscription | undefined;
    let stdin: Socket | undefined;
    const pending: Uint8Array[] = [];
    let ended = false;
    let ctl: Socket | undefined;
    const sizes: Buffer[] = [];
    const say = (line: string) => {
      const h = natsHeaders();
      h.set('s', '2');
      this.nc.publish(subjects.logs(this.node, r.execId), new TextEncoder().encode(`swarmlite: ${line}\n`), { headers: h });
    };
    if (r.interactive || r.tty) {
      // only under the name the controller authenticated: another user's publish is not heard
      input = this.nc.subscribe(subjects.stdin(this.node, r.by, r.execId), {
        callback: (_e, m) => {
          const resize = m.headers?.get('resize');
          if (resize) {
            if (!r.tty) return;
            const size = parseResize(resize);
            if (typeof size === 'string') { say(size); return; }
            const rec = resizeRecord(size.rows, size.cols);
            if (ctl) ctl.write(rec); else sizes.push(rec);
            return;
          }
          if (!r.interactive) return;
          if (m.headers?.get('eof') || m.data.length === 0) ended = true; else pending.push(m.data);
          if (stdin) pump();
        },
      });
    }
    let cut = false;
    const pump = () => {
      if (!stdin || stdin.destroyed) return;
      while (pending.length) {
        stdin.write(pending.shift()!);
        if (stdin.writableLength > STDIN_BUFFER_MAX && !cut) {
          cut = ended = true;
          pending.length = 0;
          const h = natsHeaders();
          h.set('s', '2');
          this.nc.publish(subjects.logs(this.node, r.execId), new TextEncoder().encode(`swarmlite: stdin cut: the process had not read ${STDIN_BUFFER_MAX >> 20} MiB of it yet\n`), { headers: h });
        }
      }
      if (ended) stdin.end();
    };

    let started: { pid: number; stdinFd?: number; ctlFd?: number };
    try {
      started = await this.host.exec(r.id, r.execId, p);
    } catch (err) {
      input?.unsubscribe();
      const exitCode = err instanceof ContainerError ? err.exitCode : 125;
      const error = (err as Error).message;
      await this.log.append(subjects.state(this.node, r.id), 'ExecFailed', r.id, { execId: r.execId, user: r.by, args: r.args, error, exitCode });
      return { started: false, error, exitCode };
    }
    if (started.stdinFd !== undefined) {
      // a libuv pipe handle: non-blocking writes, no thread of the pool held by a full pipe
      try { stdin = new Socket({ fd: started.stdinFd, readable: false, writable: true }); } catch { closeSync(started.stdinFd); }
      stdin?.on('error', () => { ended = true; pending.length = 0; });
      pump();
    }
    if (started.ctlFd !== undefined) {
      try { ctl = new Socket({ fd: started.ctlFd, readable: false, writable: true }); } catch { closeSync(started.ctlFd); }
      ctl?.on('error', () => { ctl?.destroy(); });
      for (const rec of sizes.splice(0)) ctl?.write(rec);
    }
    this.where.set(r.execId, r.id);
    this.streamer.follow(r.execId);
    // enqueued before the watch can append the end: one writer's appends keep their order
    const appended = this.log.append(subjects.state(this.node, r.id), 'ExecStarted', r.id, {
      execId: r.execId, user: r.by, args: r.args, ...(r.workdir ? { workdir: r.workdir } : {}),
      ...(r.processUser ? { processUser: r.processUser } : {}), ...(r.interactive ? { interactive: true } : {}), pid: started.pid,
    });
    // the process runs whatever happens to the append: its end is watched and reported
    void this.watch(r, input, () => { stdin?.destroy(); ctl?.destroy(); });
    try { await appended; } catch (err) { console.error(`agent: exec ${r.execId.slice(0, 12)}: ExecStarted: ${(err as Error).message}`); }
    return { started: true, pid: started.pid, node: this.node };
  }

  /**
   * After an agent restart: the execs that ran on while it was away. A running one is
   * watched again (its output streamed again from the start, its end reported); one that
   * ended meanwhile gets its ExecExited now. (A crash between the spawn and ExecStarted
   * leaves an exec the log never saw start: its ExecExited is still reported.)
   */
  adopt(containers: Iterable<string>): number {
    let n = 0;
    for (const id of containers) {
      for (const execId of this.host.execIds(id)) {
        if (isHealthExec(execId)) continue; // a health probe's: agent/health.ts sweeps it
        const st = this.host.execStatus(id, execId);
        // a crash between the exec's directory and its monitor's first record: nothing ran
        if (st.state === 'unknown' && st.pid === undefined) { try { this.host.deleteExec(id, execId); } catch { /* gone */ } continue; }
        n++;
        this.where.set(execId, id);
        // from the start: what it wrote while no agent was there reaches the client, which
        // drops the frames it already has by their offsets
        // one that ended while no agent was there too: what it wrote last is still unsent
        // (its end frame follows, from watch)
        this.streamer.follow(execId, 0);
        void this.watch({ id, execId } as ExecRequest, undefined, () => undefined);
      }
    }
    return n;
  }

  private async watch(r: Pick<ExecRequest, 'id' | 'execId'>, input: Subscription | undefined, closeStdin: () => void): Promise<void> {
    let code = -1;
    let signal: string | undefined;
    let exitedAt = Date.now();
    try {
      const exit = await this.host.waitExecExit(r.id, r.execId);
      code = exit.code;
      signal = exit.signal;
      exitedAt = exit.exitedAt;
    } catch { /* the container was removed under it: its exec ended with it, code unknown */ }
    input?.unsubscribe();
    closeStdin();
    this.streamer.finish(r.execId, { code: String(code) });
    this.where.delete(r.execId);
    try { this.host.deleteExec(r.id, r.execId); } catch { /* gone with its container */ }
    await this.log.append(subjects.state(this.node, r.id), 'ExecExited', r.id, { execId: r.execId, exitCode: code, ...(signal ? { signal } : {}), exitedAt })
      .catch((err) => console.error(`agent: exec ${r.execId.slice(0, 12)}: ${(err as Error).message}`));
  }

  stop(): void { this.streamer.stop(); }
}
