// tsctl: the user's side. Errors are one line on stderr and exit code 125; an attached
// `run` exits with the container's code, like docker.
import { userInfo, hostname } from 'node:os';
import type { Msg, NatsConnection } from 'nats';
import { buildProgram, runProgram, type Actions, type RunOpts } from './program.js';
import { call, CliError, dial } from './client.js';
import { runRequest, parseSince } from './requests.js';
import { table, status, command, ago, bytes } from './format.js';
import { decodeEvent, newContainerId } from '../shared/codec.js';
import { subjects } from '../shared/subjects.js';
import type { ContainerView, NodeView, ImageView } from '../shared/reducer.js';
import type { AnyEvent, ResourceLimits } from '../shared/events.js';
import { limitsFromFlags } from './limits-flags.js';

const natsUrl = () => program.opts().nats ?? process.env.SWARMLITE_NATS ?? 'nats://127.0.0.1:4222';
const me = () => `${safe(() => userInfo().username, 'unknown')}@${hostname()}`;
let conn: NatsConnection | undefined;
const nc = async () => (conn ??= await dial(natsUrl()));
const json = (v: unknown) => JSON.stringify(v, null, 2);
const out = (s: string): void => { process.stdout.write(s.endsWith("\n") ? s : `${s}\n`); };

const actions: Actions = {
  async run(image, cmd, o: RunOpts) {
    const id = newContainerId();
    const req = runRequest(id, image, cmd, o, me(), limitsFromFlags);
    const c = await nc();
    if (o.detach) {
      // like docker run -d: print the id once the node has started it (or say why not)
      const started = waitStarted(c, id);
      try { await call(c, subjects.api('run'), req); } catch (err) { started.cancel(); throw err; }
      await started.done;
      out(id);
      return;
    }
    // Subscribe before asking, so no output or state event can slip past us.
    const attach = attachTo(c, id, req.autoRemove);
    let started = false;
    const forward = (sig: NodeJS.Signals) => { if (started) void call(c, subjects.api('kill'), { ref: id, signal: sig, user: me() }).catch(() => undefined); };
    process.on('SIGINT', forward); process.on('SIGTERM', forward);
    try {
      await call(c, subjects.api('run'), req);
    } catch (err) {
      attach.cancel();
      throw err;
    }
    attach.onStarted(() => (started = true));
    process.exitCode = await attach.done;
  },

  async ps(o) {
    const list = await call<ContainerView[]>(await nc(), subjects.api('ps'), { all: o.all === true });
    if (o.format === 'json') return out(JSON.stringify(list.map(psJson)));
    if (o.quiet) return out(list.map((c) => c.id.slice(0, 12)).join('\n'));
    out(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES', 'NODE'],
      list.map((c) => [c.id.slice(0, 12), c.spec.image, command(c.spec.args), ago(c.createdAt), status(c), ports(c), c.name, c.node])));
  },

  async logs(ref, o) {
    const c = await nc();
    const ctr = await call<ContainerView>(c, subjects.api('inspect'), { ref });
    const live: Msg[] = [];
    let eof = false;
    let printing = false;
    let next = 0;
    let wake: () => void = () => undefined;
    const sub = o.follow ? c.subscribe(subjects.logs(ctr.node, ctr.id), {
      callback: (_e, m) => { if (m.headers?.get('eof')) eof = true; else live.push(m); if (printing) flushLive(); wake(); },
    }) : undefined;
    const flushLive = () => {
      while (live.length) {
        const m = live.shift()!;
        if (Number(m.headers?.get('o') ?? 0) >= next) write(Number(m.headers?.get('s') ?? 1), m.data);
      }
    };
    for (;;) {
      const r = await call<{ frames: [number, string][]; next: number; end: boolean; running: boolean }>(c, subjects.agent(ctr.node, 'logs'), { id: ctr.id, offset: next });
      for (const [s, d] of r.frames) write(s, Buffer.from(d, 'base64'));
      next = r.next;
      if (r.end) { if (!r.running) eof = true; break; }
    }
    if (!sub) return;
    printing = true;
    flushLive();
    while (!eof) await new Promise<void>((res) => { wake = res; });
    sub.unsubscribe();
  },

  // like docker, stop and rm return once the node has done it, not when it was asked
  async stop(refs, o) {
    const t = Number(o.time);
    if (!Number.isInteger(t) || t < 0) throw new CliError(`invalid -t "${o.time}": whole seconds, 0 or more`);
    await each(refs, (ref) => untilNode(ref, 'stop', { timeout: t }, 'ContainerExited', (s) => s === 'running', 15000 + t * 1000));
  },
  async kill(refs, o) { await each(refs, (ref) => call(conn!, subjects.api('kill'), { ref, signal: o.signal, user: me() })); },
  async rm(refs, o) { await each(refs, (ref) => untilNode(ref, 'rm', { force: o.force === true }, 'ContainerRemoved', () => true, 20000)); },

  async inspect(refs) {
    const c = await nc();
    const list: unknown[] = [];
    for (const ref of refs) list.push(inspectJson(await call<ContainerView>(c, subjects.api('inspect'), { ref })));
    out(json(list));
  },

  async events(o) {
    const { readLog } = await import('../shared/log.js');
    const since = o.since ? parseSince(o.since) : undefined;
    const c = await nc();
    const ac = new AbortController();
    process.on('SIGINT', () => ac.abort());
    for await (const item of readLog(c, {
      follow: o.follow === true, filter: o.filter, signal: ac.signal,
      ...(since && 'seq' in since ? { fromSeq: since.seq } : {}), ...(since && 'time' in since ? { startTime: since.time } : {}),
    })) {
      if (!item.ok) { out(o.format === 'json' ? JSON.stringify({ seq: item.seq, subject: item.subject, error: item.error.message }) : `seq ${item.seq} ${item.subject}: undecodable: ${item.error.message}`); continue; }
      const { seq, event: e } = item.stored;
      if (o.format === 'json') out(JSON.stringify({ seq, id: e.id, type: e.type, ts: e.ts, src: e.src, srcSeq: e.srcSeq, entity: e.entity, cause: e.cause, data: e.data }));
      else out(`${new Date(e.ts).toISOString()} #${seq} ${e.type} ${e.entity.slice(0, 12)} src=${e.src}${e.cause ? ` cause=${e.cause}` : ''} ${summary(e)}`);
    }
  },

  async audit(o) {
    const { readLog } = await import('../shared/log.js');
    const { emptyView, reduce } = await import('../shared/reducer.js');
    const v = emptyView();
    let undecodable = 0, events = 0;
    for await (const item of readLog(await nc())) {
      if (item.ok) { reduce(v, item.stored); events++; } else undecodable++;
    }
    const report = { events, lastSeq: v.seq, undecodable, sources: v.sources, chainIssues: v.chainIssues, rejections: v.rejections.length, intact: v.chainIssues.length === 0 && undecodable === 0 };
    if (o.format === 'json') out(JSON.stringify(report));
    else {
      out(`${events} events up to #${v.seq}; ${Object.keys(v.sources).length} sources; ${v.rejections.length} rejected; ${undecodable} undecodable`);
      for (const [src, h] of Object.entries(v.sources)) out(`  ${src.padEnd(24)} ${String(h.srcSeq).padStart(7)} events, head ${h.hash.slice(0, 16)}`);
      for (const i of v.chainIssues) out(`  BROKEN #${i.seq} ${i.src}: ${i.problem}`);
      out(report.intact ? 'log intact: every source\'s hash chain verifies' : 'log NOT intact');
    }
    if (!report.intact) process.exitCode = 1;
  },

  async imageImport(file, o) {
    const { importImage } = await import('./image-import.js');
    const c = await nc();
    const r = await importImage(c, file, o.name, me());
    out(r.digest);
  },

  async imageLs(o) {
    const list = await call<ImageView[]>(await nc(), subjects.api('image.ls'));
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((i) => i.name).join('\n'));
    out(table(['NAME', 'DIGEST', 'SIZE', 'IMPORTED'], list.map((i) => [i.name, i.digest.slice(0, 19), bytes(i.size), ago(i.importedAt)])));
  },

  async imageRm(names, o) { await each(names, (name) => call(conn!, subjects.api('image.rm'), { name, force: o.force === true, user: me() })); },

  async networkCreate(name, o) {
    const r = await call<{ name: string; subnet: string }>(await nc(), subjects.api('network.create'), { name, ...o, user: me() }, 20000);
    out(r.name);
  },

  async networkLs(o) {
    const list = await call<{ name: string; driver: string; subnet: string; nodes: string[] }[]>(await nc(), subjects.api('network.ls'));
    if (o.format === 'json') return out(JSON.stringify(list));
    if (o.quiet) return out(list.map((n) => n.name).join('\n'));
    out(table(['NAME', 'DRIVER', 'SUBNET', 'NODES'], list.map((n) => [n.name, n.driver, n.subnet, n.nodes.join(',')])));
  },

  async networkRm(names) { await each(names, (name) => call(conn!, subjects.api('network.rm'), { name, user: me() }, 20000)); },

  async networkInspect(names) {
    const c = await nc();
    const list: unknown[] = [];
    for (const name of names) list.push(await call(c, subjects.api('network.inspect'), { name }));
    out(json(list));
  },

  async port(ref) {
    const ctr = await call<ContainerView>(await nc(), subjects.api('inspect'), { ref });
    for (const p of ctr.spec.ports ?? []) out(`${p.container}/${p.proto} -> 0.0.0.0:${p.host}`);
  },

  async nodes(o) {
    const list = await call<NodeView[]>(await nc(), subjects.api('nodes'));
    if (o.format === 'json') return out(JSON.stringify(list));
    out(table(['NODE', 'HOSTNAME', 'CPUS', 'MEMORY', 'KERNEL', 'JOINED'], list.map((n) => [n.id, n.hostname, String(n.cpus), bytes(n.memory), n.kernel, ago(n.joinedAt)])));
  },

  // like docker update: returns once the node has applied the new limits, prints each ref
  async update(refs, o) {
    const resources = limitsFromFlags(o);
    if (!resources) throw new CliError('nothing to update: give --cpus, --cpu-shares, --cpuset-cpus, --memory, --memory-swap or --pids-limit');
    await each(refs, (ref) => untilNode(ref, 'update', { resources }, 'ContainerUpdated', (s) => s === 'running', 15000));
  },

  async stats(refs, o) { await (await import('./stats.js')).stats(nc, refs, o); },
};

/** Resolves when the node reports the container started; a failure becomes the CliError. */
function waitStarted(c: NatsConnection, id: string): { done: Promise<void>; cancel: () => void } {
  const sub = c.subscribe(`ev.state.*.${id}`);
  const done = (async () => {
    const timer = setTimeout(() => sub.unsubscribe(), 60000);
    try {
      for await (const m of sub) {
        let e: AnyEvent;
        try { e = decodeEvent(m.data); } catch { continue; }
        if (e.type === 'ContainerStarted') return;
        if (e.type === 'ContainerFailed') throw new CliError(e.data.error, e.data.exitCode);
        if (e.type === 'EventRejected') throw new CliError(`rejected by the node: ${e.data.reason}`);
      }
      throw new CliError(`container ${id.slice(0, 12)}: the node did not report a start within 60 s`);
    } finally { clearTimeout(timer); sub.unsubscribe(); }
  })();
  done.catch(() => undefined);
  return { done, cancel: () => sub.unsubscribe() };
}

/** Asks for a change and waits until the node reports it done (or rejects it). */
async function untilNode(ref: string, verb: string, body: object, doneType: string, waitIf: (state: string) => boolean, timeout: number): Promise<void> {
  const c = conn!;
  const ctr = await call<ContainerView>(c, subjects.api('inspect'), { ref });
  const sub = c.subscribe(`ev.state.*.${ctr.id}`);
  try {
    const r = await call<{ eventId: string; state: string }>(c, subjects.api(verb), { ref: ctr.id, ...body, user: me() }, timeout);
    if (!waitIf(r.state)) return;
    const timer = setTimeout(() => sub.unsubscribe(), timeout);
    for await (const m of sub) {
      let e: AnyEvent;
      try { e = decodeEvent(m.data); } catch { continue; }
      if (e.type === doneType) { clearTimeout(timer); return; }
      if (e.type === 'EventRejected' && e.cause === r.eventId) { clearTimeout(timer); throw new CliError(`${ctr.name}: ${e.data.reason}`); }
    }
    throw new CliError(`${ctr.name}: the node did not confirm ${verb} within ${Math.round(timeout / 1000)} s`);
  } finally { sub.unsubscribe(); }
}

/** Streams a container's output and resolves with the exit code `docker run` would give. */
function attachTo(c: NatsConnection, id: string, autoRemove: boolean): { done: Promise<number>; cancel: () => void; onStarted: (f: () => void) => void } {
  let resolve!: (n: number) => void;
  const done = new Promise<number>((r) => (resolve = r));
  let exitCode: number | undefined;
  let eof = false;
  let removed = false;
  let startedCb: (() => void) | undefined;
  let grace: NodeJS.Timeout | undefined;
  const finish = () => { clearTimeout(grace); logs.unsubscribe(); state.unsubscribe(); resolve(exitCode!); };
  // like docker run --rm, return once the container is gone, not merely exited; the log's
  // end comes before the exit, but wait briefly for either if a message raced
  const maybeFinish = () => {
    if (exitCode === undefined) return;
    if (eof && (!autoRemove || removed)) return finish();
    clearTimeout(grace);
    grace = setTimeout(finish, autoRemove ? 10000 : 2000);
  };
  const logs = c.subscribe(`logs.*.${id}`, {
    callback: (_e, m) => {
      if (m.headers?.get('eof')) { eof = true; maybeFinish(); return; }
      write(Number(m.headers?.get('s') ?? 1), m.data);
    },
  });
  const state = c.subscribe(`ev.state.*.${id}`, {
    callback: (_e, m) => {
      let e: AnyEvent;
      try { e = decodeEvent(m.data); } catch { return; }
      if (e.type === 'ContainerStarted') startedCb?.();
      else if (e.type === 'ContainerExited') { exitCode = e.data.exitCode; maybeFinish(); }
      else if (e.type === 'ContainerRemoved') { removed = true; maybeFinish(); }
      else if (e.type === 'ContainerFailed') {
        process.stderr.write(`tsctl: ${e.data.error}\n`);
        exitCode = e.data.exitCode;
        finish();
      } else if (e.type === 'EventRejected') {
        process.stderr.write(`tsctl: rejected by the node: ${e.data.reason}\n`);
        exitCode = 125;
        finish();
      }
    },
  });
  return { done, cancel: () => { logs.unsubscribe(); state.unsubscribe(); }, onStarted: (f) => (startedCb = f) };
}

function write(stream: number, data: Uint8Array): void {
  (stream === 2 ? process.stderr : process.stdout).write(data);
}

async function each(refs: string[], f: (ref: string) => Promise<unknown>): Promise<void> {
  await nc();
  let failed: CliError | undefined;
  for (const ref of refs) {
    try { await f(ref); out(ref); } catch (err) {
      if (!(err instanceof CliError)) throw err;
      process.stderr.write(`tsctl: ${err.message}\n`);
      failed = err;
    }
  }
  if (failed) throw new CliError('', failed.exitCode);
}

function psJson(c: ContainerView) {
  return { id: c.id, name: c.name, image: c.spec.image, command: c.spec.args, node: c.node, state: c.state === 'removing' ? 'exited' : c.state, status: status(c),
    exitCode: c.exitCode ?? null, createdAt: c.createdAt, startedAt: c.startedAt ?? null, finishedAt: c.finishedAt ?? null, ip: c.ip ?? null, ports: c.spec.ports ?? [] };
}

function inspectJson(c: ContainerView) {
  return {
    Id: c.id, Name: c.name, Node: c.node, Created: new Date(c.createdAt).toISOString(), RequestedBy: c.requestedBy,
    Image: c.spec.image, ImageDigest: c.spec.imageDigest,
    Config: { Cmd: c.spec.args, Env: c.spec.env, Hostname: c.spec.hostname, WorkingDir: c.spec.workdir },
    HostConfig: { NetworkMode: c.spec.network, AutoRemove: c.spec.autoRemove, PortBindings: c.spec.ports ?? [], Resources: c.spec.resources ?? {} },
    State: {
      Status: c.state, Running: c.state === 'running', Pid: c.pid ?? 0, ExitCode: c.exitCode ?? 0, Signal: c.signal ?? null,
      OOMKilled: c.oomKilled === true, Error: c.error ?? '', StartedAt: c.startedAt ? new Date(c.startedAt).toISOString() : null,
      FinishedAt: c.finishedAt ? new Date(c.finishedAt).toISOString() : null, Desired: c.desired,
    },
    NetworkSettings: { IPAddress: c.ip ?? '' },
    LastEventSeq: c.lastSeq,
  };
}

function ports(c: ContainerView): string {
  return (c.spec.ports ?? []).map((p) => `${p.hostIp ?? '0.0.0.0'}:${p.host}->${p.container}/${p.proto}`).join(', ');
}

function summary(e: AnyEvent): string {
  switch (e.type) {
    case 'ContainerRequested': return `node=${e.data.node} name=${e.data.spec.name} image=${e.data.spec.image} by=${e.data.user}`;
    case 'ContainerStarted': return `pid=${e.data.pid}`;
    case 'ContainerExited': return `exitCode=${e.data.exitCode}${e.data.signal ? ` signal=${e.data.signal}` : ''}${e.data.oomKilled ? ' oomKilled' : ''}`;
    case 'ContainerFailed': return `error=${JSON.stringify(e.data.error)}`;
    case 'EventRejected': return `reason=${JSON.stringify(e.data.reason)}`;
    case 'NodeJoined': return `cpus=${e.data.cpus} memory=${bytes(e.data.memory)}`;
    case 'ImageImported': case 'ImageRemoved': return `name=${e.data.name} digest=${e.data.digest.slice(0, 19)}`;
    default: return 'user' in e.data ? `by=${(e.data as { user: string }).user}` : '';
  }
}

function safe<T>(f: () => T, d: T): T { try { return f(); } catch { return d; } }

const program = buildProgram(actions);

/** Runs tsctl on argv; the process exits with tsctl's (or the container's) code. */
export function main(argv: string[]): void {
  runProgram(program, argv)
    .catch((err) => {
      if (err instanceof CliError) { if (err.message) process.stderr.write(`tsctl: ${err.message}\n`); process.exitCode = err.exitCode; }
      else { process.stderr.write(`tsctl: ${(err as Error).message}\n`); process.exitCode = 125; }
    })
    .finally(async () => {
      // every request was answered and every publish awaited: a graceful close would
      // only wait for the server
      process.exit(process.exitCode ?? 0);
    });
}

export type { ResourceLimits };
