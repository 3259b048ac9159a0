// Container commands (run has a module of its own, commands/run.ts): ps, logs, stop, kill, rm, inspect, port, update, stats.
import type { Msg } from 'nats';
import { subjects } from '../../shared/subjects.js';
import { controllerApi as capi } from '../../shared/api/controller.js';
import { agentApi } from '../../shared/api/agent.js';
import type { ContainerView } from '../../shared/reducer.js';
import type { HealthState } from '../../shared/health.js';
import type { Actions } from '../program.js';
import { api, agent, pages, CliError } from '../client.js';
import { psFilter } from '../requests.js';
import { hostConfigShown } from '../host-flags.js';
import { table, status, command, ago } from '../format.js';
import { limitsFromFlags } from '../limits-flags.js';
import { each, json, me, nc, out, write } from '../session.js';
import { untilNode } from '../watch.js';
import { removeAll } from '../remove.js';
import { seconds } from '../lifecycle-flags.js';

export const containerCommands: Pick<Actions, 'ps' | 'logs' | 'stop' | 'kill' | 'rm' | 'inspect' | 'port' | 'update' | 'stats'> = {
  async ps(o) {
    let last: number | undefined;
    if (o.last !== undefined) {
      last = Number(o.last);
      if (!Number.isSafeInteger(last) || last < 1) throw new CliError(`invalid --last "${o.last}": a whole number, 1 or more`);
    }
    const filter = psFilter(o.filter ?? []);
    const list = await pages(await nc(), capi.ps, { all: o.all === true, ...(filter ? { filter } : {}), ...(last ? { last } : {}) });
    if (o.format === 'json') return out(JSON.stringify(list.map(psJson)));
    if (o.quiet) return out(list.map((c) => c.id.slice(0, 12)).join('\n'));
    out(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES', 'NODE'],
      list.map((c) => [c.id.slice(0, 12), c.spec.image, command(c.spec.args), ago(c.createdAt), status(c), ports(c), c.name, c.node])));
  },

  async logs(ref, o) {
    const c = await nc();
    const ctr = await api(c, capi.inspect, { ref });
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
      const r = await agent(c, ctr.node, agentApi.logs, { id: ctr.id, offset: next });
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
  // without -t the controller uses the container's --stop-timeout (else 10 s)
  async stop(refs, o) {
    const t = o.time === undefined ? undefined : seconds('-t', o.time);
    const c = await nc();
    await each(refs, async (ref) => {
      const wait = t ?? (await api(c, capi.inspect, { ref })).spec.stopTimeout ?? 10;
      await untilNode(c, ref, capi.stop, t === undefined ? {} : { timeout: t }, 'ContainerExited', (s) => s === 'running', 15000 + wait * 1000);
    });
  },
  async kill(refs, o) {
    const c = await nc();
    await each(refs, (ref) => api(c, capi.kill, { ref, signal: o.signal, user: me() }));
  },
  async rm(refs, o) {
    await removeAll(await nc(), refs, o.force === true, o.volumes === true);
  },

  async inspect(refs) {
    const c = await nc();
    const list: unknown[] = [];
    for (const ref of refs) list.push(inspectJson(await api(c, capi.inspect, { ref })));
    out(json(list));
  },

  async port(ref) {
    const ctr = await api(await nc(), capi.inspect, { ref });
    for (const p of ctr.spec.ports ?? []) out(`${p.container}/${p.proto} -> 0.0.0.0:${p.host}`);
  },

  // like docker update: returns once the node has applied the new limits, prints each ref
  async update(refs, o) {
    const resources = limitsFromFlags(o);
    if (!resources) throw new CliError('nothing to update: give --cpus, --cpu-shares, --cpuset-cpus, --memory, --memory-swap or --pids-limit');
    const c = await nc();
    await each(refs, (ref) => untilNode(c, ref, capi.update, { resources }, 'ContainerUpdated', (s) => s === 'running', 15000));
  },

  async stats(refs, o) { await (await import('../stats.js')).stats(nc, refs, o); },
};

function psJson(c: ContainerView) {
  return { id: c.id, name: c.name, image: c.spec.image, command: c.spec.args, node: c.node, state: c.state === 'removing' ? 'exited' : c.state, status: status(c), paused: c.paused === true, health: c.health?.status ?? null,
    exitCode: c.exitCode ?? null, createdAt: c.createdAt, startedAt: c.startedAt ?? null, finishedAt: c.finishedAt ?? null, ip: c.ip ?? null, ports: c.spec.ports ?? [], labels: c.spec.labels ?? {} };
}

function inspectJson(c: ContainerView) {
  return {
    Id: c.id, Name: c.name, Node: c.node, Created: new Date(c.createdAt).toISOString(), RequestedBy: c.requestedBy,
    Image: c.spec.image, ImageDigest: c.spec.imageDigest,
    Config: { Cmd: c.spec.args, Env: c.spec.env, Hostname: c.spec.hostname, WorkingDir: c.spec.workdir, Labels: c.spec.labels ?? {}, Tty: c.spec.tty !== undefined, OpenStdin: c.spec.interactive === true, StopSignal: c.spec.stopSignal ?? 'SIGTERM', StopTimeout: c.spec.stopTimeout ?? 10, ...(c.spec.healthcheck ? { Healthcheck: c.spec.healthcheck } : {}) },
    RestartCount: c.restartCount ?? 0,
    HostConfig: {
      RestartPolicy: { Name: c.spec.restartPolicy?.name ?? 'no', MaximumRetryCount: c.spec.restartPolicy?.maxRetries ?? 0 },
      NetworkMode: c.spec.network, PidMode: c.spec.pidMode ?? '', IpcMode: c.spec.ipcMode ?? 'private', UTSMode: c.spec.utsMode ?? '', ReadonlyRootfs: c.spec.readOnly === true, User: c.spec.processUser ?? '', GroupAdd: c.spec.groupAdd ?? [], Init: c.spec.init === true, AutoRemove: c.spec.autoRemove, PortBindings: c.spec.ports ?? [], Resources: c.spec.resources ?? {},
      Devices: c.spec.security?.devices ?? [], CapAdd: c.spec.security?.capAdd ?? [], CapDrop: c.spec.security?.capDrop ?? [],
      SecurityOpt: [...(c.spec.security?.seccomp ? [c.spec.security.seccomp === 'unconfined' ? 'seccomp=unconfined' : 'seccomp=<profile>'] : []),
        ...(c.spec.security?.noNewPrivileges ? ['no-new-privileges'] : [])],
      Ulimits: c.spec.security?.ulimits ?? [], OomScoreAdj: c.spec.security?.oomScoreAdj ?? 0,
      ...hostConfigShown(c.spec),
    },
    State: {
      Status: c.restarting ? 'restarting' : c.state, Running: c.state === 'running', Paused: c.paused === true, Restarting: c.restarting === true, Pid: c.pid ?? 0, ExitCode: c.exitCode ?? 0, Signal: c.signal ?? null,
      OOMKilled: c.oomKilled === true, Error: c.error ?? '', StartedAt: c.startedAt ? new Date(c.startedAt).toISOString() : null,
      FinishedAt: c.finishedAt ? new Date(c.finishedAt).toISOString() : null, Desired: c.desired,
      ...(c.health ? { Health: healthShown(c.health) } : {}),
    },
    // docker's Mounts: -v, --tmpfs and the anonymous volumes of the image's VOLUME paths
    Mounts: (c.spec.mounts ?? []).map((m) => ({
      Type: m.type, ...(m.type === 'volume' ? { Name: m.source, Driver: 'local' } : m.type === 'bind' ? { Source: m.source } : {}),
      Destination: m.target, RW: m.readOnly !== true, ...(m.anonymous ? { Anonymous: true } : {}),
    })),
    NetworkSettings: { IPAddress: c.ip ?? '' },
    LastEventSeq: c.lastSeq,
  };
}

/** docker's State.Health: the status, the failures in a row, the last probes (as of the last change its node reported). */
function healthShown(h: HealthState) {
  const iso = (ms: number) => new Date(ms).toISOString();
  return { Status: h.status, FailingStreak: h.failingStreak, Log: h.log.map((p) => ({ Start: iso(p.start), End: iso(p.end), ExitCode: p.exitCode, Output: p.output })) };
}

function ports(c: ContainerView): string {
  return (c.spec.ports ?? []).map((p) => `${p.hostIp ?? '0.0.0.0'}:${p.host}->${p.container}/${p.proto}`).join(', ');
}
