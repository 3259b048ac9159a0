// The cluster view is fold(events). One pure reducer, used by the controller, by
// tsctl (events, history, audit) and by the tests. It never throws on an event that
// decoded: an impossible transition is recorded as an anomaly, not a crash.
// A side's event counts only from that side: desired events from the controller, a
// container's state from the node it was placed on, a node's join from that node; what a
// node refused shows as refused, never as if it had happened. (Whether `src` is true is
// the signatures' job; here it is taken as written.)
import type { ContainerSpec, ResourceLimits, StoredEvent , NodeAvailability, ServiceSpec, UpdateConfig } from './events.js';
import { ID_PREFIX_RE } from './ids.js';
import { volumeEntity, volumeKey } from './volumes.js';
import { checks, initialHealth, type HealthState } from './health.js';

/** 'rejected': its node refused the request (the reason is in `error`); nothing of it exists on a node. */
export type ContainerState = 'created' | 'running' | 'exited' | 'failed' | 'removing' | 'rejected';
/** States whose node keeps the container's root mounted (until rm): tsctl cp works on them, as docker cp on a stopped container. */
export const KEEPS_ROOT: ReadonlySet<ContainerState> = new Set(['created', 'running', 'exited']);

export interface ContainerView {
  id: string;
  name: string;
  node: string;
  spec: ContainerSpec;
  state: ContainerState;
  desired: 'running' | 'stopped' | 'removed';
  pid?: number;
  ip?: string;
  exitCode?: number;
  signal?: string;
  oomKilled?: boolean;
  error?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  requestedBy: string;
  lastSeq: number;
  /** Frozen by tsctl pause (ContainerPaused), until ContainerUnpaused or its exit. */
  paused?: boolean;
  /** Starts its restart policy made since the last start a user asked for (docker's RestartCount). */
  restartCount?: number;
  /** Exited, and its restart policy starts it again after a back-off (until a stop). */
  restarting?: boolean;
  /** Its health check's state (docker's State.Health), from its start: starting, then what its node reported last. */
  health?: HealthState;
  /**
   * The position of the controller's last event on this container's desired subject: what
   * the next desire for it (stop, kill, rm, ...) expects to find there (controller/lease.ts
   * desiredExpect), so that a controller whose view missed another's write is refused.
   */
  dseq?: number;
}

export interface NodeView {
  id: string; hostname: string; cpus: number; memory: number; kernel: string;
  features: string[]; version: string; joinedAt: number; lastSeq: number;
  /** membership as the controller decided it (NodeDown/NodeReady); absent in an old snapshot: ready */
  state?: 'ready' | 'down'; stateSince?: number;
  availability?: NodeAvailability; labels?: Record<string, string>;
}

export interface ImageView { name: string; digest: string; size: number; importedAt: number; importedBy: string; layers?: string[]; source?: string }

export interface NetworkView {
  name: string; subnet: string; gateway?: string; createdAt: number; createdBy: string;
  /** per node: asked, made (with its bridge), or being removed */
  nodes: Record<string, { state: 'requested' | 'ready' | 'removing'; bridge?: string; gateway?: string }>;
  /** why a node refused it, kept after the network is gone so the controller can say */
  error?: string;
}

/** A named volume of one node (tsctl volume, or made by a run's -v NAME:DST). */
export interface VolumeView {
  name: string; node: string; createdAt: number; createdBy: string; labels?: Record<string, string>;
  /** asked, made by its node (with its host path), or being removed */
  state: 'requested' | 'ready' | 'removing';
  mountpoint?: string;
  /** made for one container (-v /path, an image's VOLUME): rm -v and --rm remove it */
  anonymous?: boolean;
}

/** A service as the log says it is wanted (controller/services.ts reconciles its tasks). */
export interface ServiceView {
  id: string; spec: ServiceSpec; createdAt: number; createdBy: string; updatedAt: number; lastSeq: number;
  /** the highest task number requested so far: the next task is this + 1 */
  tasks: number;
  /** slots without a task now, with the placement's reason (ServiceTaskPending) */
  pending?: Record<string, string>;
  /** the task spec's version (absent: 0): a new one when an update changes what a task runs, the previous one back on a rollback */
  version?: number;
  previousVersion?: number;
  /** the highest version ever given: the next new spec's is this + 1 */
  topVersion?: number;
  /** the spec before the last update, which a rollback returns to */
  previous?: ServiceSpec;
  /** the last update or rollback and where it is (docker's UpdateStatus) */
  updateStatus?: UpdateStatus;
}

/** Where a rolling update is; `policy` is the one it rolls with (controller/rolling.ts). */
export interface UpdateStatus {
  state: 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';
  rollback: boolean; policy: UpdateConfig; startedAt: number; completedAt?: number; message: string;
  /** the service's highest task number when it started: the update's own tasks are the later ones */
  fromTask: number;
  /** why it started, when it says (a rollback's cause), kept once it is done */
  reason?: string;
}

/** JSON with sorted keys: two specs equal whatever order their fields were written in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** Whether a spec change replaces the tasks: what they run, or where they may run. */
export const tasksChange = (a: ServiceSpec, b: ServiceSpec): boolean =>
  canonical(a.task) !== canonical(b.task) || canonical(a.constraints ?? []) !== canonical(b.constraints ?? [])
  || canonical(a.placementPrefs ?? []) !== canonical(b.placementPrefs ?? []);

export interface ChainIssue { seq: number; src: string; problem: string }

export interface ClusterView {
  seq: number;
  containers: Record<string, ContainerView>;
  nodes: Record<string, NodeView>;
  images: Record<string, ImageView>;
  networks: Record<string, NetworkView>;
  /** by service id; absent in a view from before services */
  services?: Record<string, ServiceView>;
  /** last refusal per network name, for the controller's reply after the fold dropped it */
  networkErrors: Record<string, string>;
  /** Named volumes by volumeKey(node, name) (absent in views from before volumes were events). */
  volumes?: Record<string, VolumeView>;
  /** A node's last refusal of a volume request, by volumeKey, for the controller's reply. */
  volumeErrors?: Record<string, string>;
  sources: Record<string, { srcSeq: number; hash: string }>;
  chainIssues: ChainIssue[];
  rejections: { seq: number; src: string; entity: string; reason: string }[];
  /** Signing keys learnt from root-signed registrations (shared/signing.ts), where the reader checks signatures. */
  keys?: Record<string, string>;
  /** Events a signature check refused (not folded): the last ones, and how many in all. */
  forged?: { seq: number; src: string; type: string; problem: string }[];
  forgedCount?: number;
  /**
   * Per claimed name (`<kind>/<name>`): its last Claimed event's stream position (what the next
   * claim expects), who took it and when (controller/lease.ts).
   */
  /** `used`: the claimer's event that takes the name was folded (its entity may since have left the live view) */
  claims?: Record<string, { seq: number; entity: string; ts: number; used?: boolean }>;
  /**
   * The controller that leads (its last ControllerLeading). `highest`: the highest term any
   * ControllerLeading folded so far announced (a log from before controller/lease.ts nextTerm
   * may hold one lower than an earlier one); absent in a snapshot made before it was kept.
   */
  leader?: { host: string; term: number; seq: number; highest?: number };
  /** The latest `ts` of the events passed (folded or refused): a snapshot's time, for `view --at TIME`. */
  maxTs?: number;
}

/** Records a refused event: its position is passed, nothing of it is folded. */
export function refuse(view: ClusterView, s: StoredEvent, problem: string): void {
  if (s.seq <= view.seq) return;
  view.seq = s.seq;
  if (s.event.ts > (view.maxTs ?? 0)) view.maxTs = s.event.ts;
  pushCapped(view.forged ??= [], { seq: s.seq, src: s.event.src, type: s.event.type, problem });
  view.forgedCount = (view.forgedCount ?? 0) + 1;
}

export function emptyView(): ClusterView {
  return { seq: 0, containers: {}, nodes: {}, images: {}, networks: {}, networkErrors: {}, sources: {}, chainIssues: [], rejections: [] };
}

const MAX_KEPT = 1000;

/** Applies one stored event. Mutates and returns `view` (callers own their view; copying
 *  a large view per event would make a replay quadratic). */
export function reduce(view: ClusterView, s: StoredEvent): ClusterView {
  const e = s.event;
  if (s.seq <= view.seq) return view; // at-least-once delivery: a replayed position is a no-op
  view.seq = s.seq;
  if (e.ts > (view.maxTs ?? 0)) view.maxTs = e.ts;

  const head = view.sources[e.src];
  const want = head ? head.srcSeq + 1 : 1;
  const wantPrev = head ? head.hash : '';
  if (e.srcSeq !== want || e.prev !== wantPrev) {
    pushCapped(view.chainIssues, {
      seq: s.seq, src: e.src,
      problem: e.srcSeq !== want ? `srcSeq ${e.srcSeq}, expected ${want}` : `prev ${e.prev.slice(0, 12)} does not match ${wantPrev.slice(0, 12) || '(start)'}`,
    });
  }
  view.sources[e.src] = { srcSeq: e.srcSeq, hash: s.hash };

  view.networks ??= {}; view.networkErrors ??= {}; // snapshots from before networks existed
  const c = own(view.containers, e.entity);
  const ix = INDEX.get(view);
  // a deferred index (a catch-up) keeps only its trackers and size: no keys to compare
  const lazy = ix !== undefined && ix.deferred;
  const before = ix && c && !lazy ? keyOf(c) : undefined;
  const node = e.src.startsWith('node:') ? e.src.slice(5) : '';
  const fromController = e.src === 'controller';
  // a container's state counts only from the node it was placed on
  const fromItsNode = c !== undefined && node !== '' && node === c.node;
  switch (e.type) {
    case 'Claimed':
      if (fromController) (view.claims ??= {})[`${e.data.kind}/${e.data.key}`] = { seq: s.seq, entity: e.entity, ts: e.ts };
      break;
    case 'ControllerLeading':
      if (fromController) view.leader = { host: e.data.host, term: e.data.term, seq: s.seq, highest: Math.max(e.data.term, view.leader?.highest ?? view.leader?.term ?? 0) };
      break;
    case 'NetworkCreateRequested': {
      if (!fromController) break;
      markUsed(view, `network/${e.data.name}`, e.entity);
      const n = (view.networks[e.data.name] = own(view.networks, e.data.name) ?? { name: e.data.name, subnet: e.data.subnet, createdAt: e.ts, createdBy: e.data.user, nodes: {} });
      if (e.data.gateway) n.gateway = e.data.gateway;
      n.nodes[e.data.node] = { state: 'requested' };
      delete view.networkErrors[e.data.name];
      break;
    }
    case 'NetworkCreated': {
      const n = own(view.networks, e.data.name);
      if (n && own(n.nodes, node)) { n.nodes[node] = { state: 'ready', bridge: e.data.bridge, gateway: e.data.gateway }; n.gateway ??= e.data.gateway; }
      break;
    }
    case 'NetworkRemoveRequested': {
      if (!fromController) break;
      const at = own(own(view.networks, e.data.name)?.nodes ?? {}, e.data.node);
      if (at) at.state = 'removing';
      break;
    }
    case 'NetworkRemoved':
      if (node) dropNetworkNode(view, e.data.name, node);
      break;
    case 'VolumeCreateRequested': {
      if (!fromController) break;
      const vs = (view.volumes ??= {}), k = volumeKey(e.data.node, e.data.name);
      const was = own(vs, k);
      vs[k] = was?.state === 'ready' ? was : {
        name: e.data.name, node: e.data.node, createdAt: e.ts, createdBy: e.data.user, state: 'requested',
        ...(e.data.labels ? { labels: e.data.labels } : {}), ...(e.data.anonymous ? { anonymous: true } : {}),
      };
      if (view.volumeErrors) delete view.volumeErrors[k];
      break;
    }
    case 'VolumeCreated': {
      const v = node ? own(view.volumes ?? {}, volumeKey(node, e.data.name)) : undefined;
      if (v && v.state === 'requested') { v.state = 'ready'; v.mountpoint = e.data.mountpoint; }
      break;
    }
    case 'VolumeRemoveRequested': {
      if (!fromController) break;
      const v = own(view.volumes ?? {}, volumeKey(e.data.node, e.data.name));
      if (v) v.state = 'removing';
      if (view.volumeErrors) delete view.volumeErrors[volumeKey(e.data.node, e.data.name)];
      break;
    }
    case 'VolumeRemoved':
      if (node && view.volumes) delete view.volumes[volumeKey(node, e.data.name)];
      break;
    case 'ServiceCreated':
      if (!fromController || own(view.services ??= {}, e.entity)) break;
      markUsed(view, `service/${e.data.spec.name}`, e.entity);
      view.services[e.entity] = { id: e.entity, spec: e.data.spec, createdAt: e.ts, createdBy: e.data.user, updatedAt: e.ts, lastSeq: s.seq, tasks: 0 };
      break;
    case 'ServiceUpdated': {
      const svc = fromController ? own(view.services ?? {}, e.entity) : undefined;
      if (svc && svc.spec.mode === 'replicated') { svc.spec = { ...svc.spec, replicas: e.data.replicas }; svc.updatedAt = e.ts; svc.lastSeq = s.seq; }
      break;
    }
    case 'ServiceUpdateStarted': {
      const svc = fromController ? own(view.services ?? {}, e.entity) : undefined;
      if (!svc || svc.spec.mode !== e.data.spec.mode || svc.spec.name !== e.data.spec.name) break;
      const rollback = e.data.rollback === true;
      // a rollback to the spec before gives it back its version: the tasks still at it stay
      const was = svc.version ?? 0;
      const v = !e.data.force && !tasksChange(svc.spec, e.data.spec) ? was
        : rollback && svc.previous && svc.previousVersion !== undefined && !tasksChange(svc.previous, e.data.spec) ? svc.previousVersion
          : Math.max(svc.topVersion ?? 0, was) + 1;
      svc.previousVersion = was; svc.version = v; svc.topVersion = Math.max(svc.topVersion ?? 0, was, v);
      svc.previous = svc.spec; svc.spec = e.data.spec; svc.updatedAt = e.ts; svc.lastSeq = s.seq;
      svc.updateStatus = {
        state: rollback ? 'rollback_started' : 'updating', rollback, policy: e.data.policy, startedAt: e.ts, fromTask: svc.tasks,
        message: e.data.reason ?? (rollback ? 'rollback started' : 'update in progress'), ...(e.data.reason ? { reason: e.data.reason } : {}),
      };
      break;
    }
    case 'ServiceUpdatePaused': {
      const u = fromController ? own(view.services ?? {}, e.entity)?.updateStatus : undefined;
      if (u && (u.state === 'updating' || u.state === 'rollback_started')) { u.state = u.rollback ? 'rollback_paused' : 'paused'; u.message = e.data.reason; own(view.services!, e.entity)!.lastSeq = s.seq; }
      break;
    }
    case 'ServiceUpdateCompleted': {
      const u = fromController ? own(view.services ?? {}, e.entity)?.updateStatus : undefined;
      if (u && (u.state === 'updating' || u.state === 'rollback_started')) {
        u.state = u.rollback ? 'rollback_completed' : 'completed'; u.completedAt = e.ts;
        u.message = u.rollback ? 'rollback completed' : 'update completed'; own(view.services!, e.entity)!.lastSeq = s.seq;
      }
      break;
    }
    case 'ServiceRemoved':
      if (fromController && view.services) delete view.services[e.entity];
      break;
    case 'ServiceTaskPending': {
      const svc = fromController ? own(view.services ?? {}, e.entity) : undefined;
      if (svc) { (svc.pending ??= {})[e.data.slot] = e.data.reason; svc.lastSeq = s.seq; }
      break;
    }
    case 'ContainerRequested':
      if (fromController) markUsed(view, `container/${e.data.spec.name}`, e.entity);
      if (fromController && e.data.spec.service) {
        const t = e.data.spec.service, svc = own(view.services ?? {}, t.id);
        if (svc) { svc.tasks = Math.max(svc.tasks, t.task); if (svc.pending) { delete svc.pending[t.slot]; if (!Object.keys(svc.pending).length) delete svc.pending; } }
      }
      if (!c && fromController) {
        view.containers[e.entity] = {
          id: e.entity, name: e.data.spec.name, node: intern(e.data.node), spec: internSpec(e.data.spec),
          state: 'created', desired: e.data.create ? 'stopped' : 'running', createdAt: e.ts, requestedBy: intern(e.data.user), lastSeq: s.seq,
          // placed just before its node's NodeDown was folded (the append raced the verdict): the same reason
          ...(!e.data.create && own(view.nodes, e.data.node)?.state === 'down' ? { error: downBeforeStart(e.data.node) } : {}),
        };
      }
      break;
    case 'ContainerStopRequested':
    case 'ContainerKillRequested':
      // a user's stop (or kill) also ends a restart policy's starts
      if (c && fromController) { c.desired = 'stopped'; c.lastSeq = s.seq; delete c.restarting; }
      break;
    case 'ContainerStartRequested':
      if (c && fromController) {
        c.desired = 'running'; c.lastSeq = s.seq;
        // a created one's start asked for while its node is down: the same reason as strand's
        if (c.state === 'created' && c.startedAt === undefined && c.error === undefined && own(view.nodes, c.node)?.state === 'down') c.error = downBeforeStart(c.node);
      }
      break;
    case 'ContainerCreated':
      if (fromItsNode) { if (e.data.ip) c.ip = e.data.ip; c.lastSeq = s.seq; }
      break;
    case 'ContainerRemoveRequested':
      if (!c || !fromController) break;
      // a request its node refused left nothing on any node: removing it is forgetting it
      if (c.state === 'rejected') { delete view.containers[e.entity]; break; }
      c.desired = 'removed'; c.state = c.state === 'running' && !e.data.force ? c.state : 'removing'; c.lastSeq = s.seq;
      break;
    case 'ContainerUpdateRequested':
      if (c && fromController) { c.lastSeq = s.seq; }
      break;
    case 'ContainerPauseRequested':
    case 'ContainerUnpauseRequested':
      if (c && fromController) c.lastSeq = s.seq;
      break;
    case 'ContainerRenameRequested':
      if (c && fromController) { c.name = e.data.name; c.spec = { ...c.spec, name: e.data.name }; c.lastSeq = s.seq; }
      break;
    case 'ContainerPaused':
      if (fromItsNode) { c.paused = true; c.lastSeq = s.seq; }
      break;
    case 'ContainerUnpaused':
      if (fromItsNode) { delete c.paused; c.lastSeq = s.seq; }
      break;
    case 'ContainerUpdated':
      if (fromItsNode) { c.spec = { ...c.spec, resources: mergeLimits(c.spec.resources, e.data.resources) }; c.lastSeq = s.seq; }
      break;
    case 'ContainerStarted':
      if (fromItsNode) {
        Object.assign(c, { state: 'running', pid: e.data.pid, startedAt: e.data.runningAt, lastSeq: s.seq });
        if (e.data.ip) c.ip = e.data.ip;
        if (e.data.restartCount) c.restartCount = e.data.restartCount; else delete c.restartCount;
        delete c.exitCode; delete c.signal; delete c.finishedAt; delete c.error; delete c.restarting;
        // every run starts its checks again (docker): starting until its node says otherwise
        if (checks(c.spec.healthcheck)) c.health = initialHealth(); else delete c.health;
      }
      break;
    case 'ContainerHealthChanged':
      // about the run that is running now: a late report of an earlier run changes nothing
      if (fromItsNode && c.state === 'running' && c.startedAt === e.data.runningAt && c.health) {
        c.health = { status: e.data.status, failingStreak: e.data.failingStreak, log: e.data.log };
        c.lastSeq = s.seq;
      }
      break;
    case 'ContainerExited':
      if (fromItsNode) {
        Object.assign(c, { state: c.state === 'removing' ? 'removing' : 'exited', exitCode: e.data.exitCode, oomKilled: e.data.oomKilled, finishedAt: e.data.exitedAt, lastSeq: s.seq });
        if (e.data.signal) c.signal = e.data.signal;
        if (e.data.restartInMs !== undefined && c.desired !== 'removed') c.restarting = true; else delete c.restarting;
        delete c.pid; delete c.paused;
      }
      break;
    case 'ContainerFailed':
      if (fromItsNode) { Object.assign(c, { state: c.state === 'removing' ? 'removing' : 'failed', error: e.data.error, exitCode: e.data.exitCode, finishedAt: e.ts, lastSeq: s.seq }); delete c.pid; delete c.paused; }
      break;
    case 'ContainerRemoved':
      if (fromItsNode) delete view.containers[e.entity];
      break;
    case 'EventRejected':
      if (!node) break;
      pushCapped(view.rejections, { seq: s.seq, src: e.src, entity: e.entity, reason: e.data.reason });
      if (e.entity.startsWith('vol') && (e.data.rejectedType === 'VolumeCreateRequested' || e.data.rejectedType === 'VolumeRemoveRequested')) {
        // which volume: the one of this node whose entity this is and that waits for an answer
        const v = Object.values(view.volumes ?? {}).find((x) => x.node === node && x.state !== 'ready' && volumeEntity(x.name) === e.entity);
        if (v) {
          (view.volumeErrors ??= {})[volumeKey(node, v.name)] = e.data.reason;
          // a refused creation leaves nothing; a refused removal leaves the volume as it was
          if (e.data.rejectedType === 'VolumeCreateRequested') delete view.volumes![volumeKey(node, v.name)];
          else v.state = 'ready';
        }
      } else if (e.entity.startsWith('net-') && e.data.rejectedType === 'NetworkCreateRequested') {
        const name = e.entity.slice(4);
        view.networkErrors[name] = e.data.reason;
        dropNetworkNode(view, name, node);
      } else if (fromItsNode) {
        if (e.data.gone) delete view.containers[e.entity]; // its node has nothing of it
        else if (e.data.rejectedType === 'ContainerRequested' && c.state === 'created') {
          Object.assign(c, { state: 'rejected', error: e.data.reason, lastSeq: s.seq });
        }
      }
      break;
    case 'NodeJoined': {
      if (node !== e.entity) break; // a node joins only as itself
      // a rejoin keeps what the controller and the operator said (down until heard, labels)
      const was = own(view.nodes, e.entity);
      ix?.touchNode(e.entity);
      view.nodes[e.entity] = {
        id: e.entity, hostname: e.data.hostname, cpus: e.data.cpus, memory: e.data.memory, kernel: e.data.kernel,
        features: e.data.features, version: e.data.version, joinedAt: e.ts, lastSeq: s.seq,
        state: was?.state ?? 'ready', stateSince: was?.stateSince ?? e.ts,
        ...(was?.availability ? { availability: was.availability } : {}), ...(was?.labels ? { labels: was.labels } : {}),
      };
      break;
    }
    case 'NodeDown':
    case 'NodeReady': {
      const n = fromController ? own(view.nodes, e.entity) : undefined;
      if (n) { n.state = e.type === 'NodeDown' ? 'down' : 'ready'; n.stateSince = e.ts; n.lastSeq = s.seq; ix?.touchNode(e.entity); }
      if (n && e.type === 'NodeDown') strand(view, e.entity, s.seq, ix);
      break;
    }
    case 'NodeUpdated': {
      const n = fromController ? own(view.nodes, e.entity) : undefined;
      if (!n) break;
      ix?.touchNode(e.entity);
      if (e.data.availability) n.availability = e.data.availability;
      if (e.data.labelAdd || e.data.labelRm) {
        const labels: Record<string, string> = { ...n.labels };
        for (const [k, v] of Object.entries(e.data.labelAdd ?? {})) labels[k] = v;
        for (const k of e.data.labelRm ?? []) delete labels[k];
        n.labels = labels;
      }
      n.lastSeq = s.seq;
      break;
    }
    case 'NodeRemoved':
      if (!fromController) break;
      delete view.nodes[e.entity];
      ix?.touchNode(e.entity);
      // with --force the node's containers leave the view too: nothing can manage them any more
      if (e.data.force) {
        const ids = ix ? ix.idsOnNode(e.entity) : Object.keys(view.containers).filter((id) => view.containers[id].node === e.entity);
        for (const id of ids) {
          const x = view.containers[id];
          if (ix && x.id !== e.entity) { if (lazy) ix.touch(id, true, false); else ix.update(id, keyOf(x), undefined); }
          delete view.containers[id];
        }
      }
      break;
    case 'ImageImported':
      if (fromController) {
        view.images[e.data.name] = { name: e.data.name, digest: e.data.digest, size: e.data.size, importedAt: e.ts, importedBy: e.data.user,
          ...(e.data.layers ? { layers: e.data.layers } : {}), ...(e.data.source ? { source: e.data.source } : {}) };
      }
      break;
    case 'ImageRemoved':
      if (fromController && own(view.images, e.data.name)?.digest === e.data.digest) delete view.images[e.data.name];
      break;
  }
  // the controller's desires for a container go on its own subject (ev.desired.<node>.<id>);
  // an event of a stream without subjects (tests' logs) counts as being on it
  if (fromController && e.type.startsWith('Container')) {
    const d = own(view.containers, e.entity);
    if (d && (s.subject === undefined || isDesiredOf(s.subject, d.node, d.id))) d.dseq = s.seq;
  }
  if (ix && (c || own(view.containers, e.entity))) {
    const now = own(view.containers, e.entity);
    if (lazy) ix.touch(e.entity, c !== undefined, now !== undefined);
    else ix.update(e.entity, before, now && keyOf(now));
  }
  return view;
}

// Every decoded event brings its own copy of each string; a view of 100,000 containers would
// hold 100,000 copies of the same image digest, node name, args and env. The strings that
// repeat across containers are kept once (a bounded table: past INTERN_MAX it starts again).
const INTERN_MAX = 50_000;
const interned = new Map<string, string>();

/** One shared copy of `s`. */
export function intern(s: string): string {
  if (typeof s !== 'string' || s.length > 256) return s;
  const had = interned.get(s);
  if (had !== undefined) return had;
  if (interned.size >= INTERN_MAX) interned.clear();
  interned.set(s, s);
  return s;
}

const internAll = (a: unknown) => { if (Array.isArray(a)) for (let i = 0; i < a.length; i++) a[i] = intern(a[i]); };

/** The spec with its repeated strings shared (in place: equal strings, nothing else changes). */
function internSpec(spec: ContainerSpec): ContainerSpec {
  const o = spec as unknown as Record<string, unknown>;
  for (const k of ['image', 'imageDigest', 'workdir', 'network']) if (typeof o[k] === 'string') o[k] = intern(o[k] as string);
  internAll(spec.args); internAll(spec.env); internAll(spec.layers);
  return spec;
}

/** Whether `subject` is `ev.desired.<node>.<id>`, compared in place (a string made per event was a tenth of the fold). */
function isDesiredOf(subject: string, node: string, id: string): boolean {
  const at = DESIRED.length + node.length;
  return subject.length === at + 1 + id.length && subject.startsWith(DESIRED) && subject.startsWith(node, DESIRED.length)
    && subject.charCodeAt(at) === 46 /* . */ && subject.endsWith(id);
}
const DESIRED = 'ev.desired.';

/** A record's own entry: names like "constructor" are keys, never inherited members. */
export function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

function dropNetworkNode(view: ClusterView, name: string, node: string): void {
  const n = own(view.networks, name);
  if (!n) return;
  delete n.nodes[node];
  if (Object.keys(n.nodes).length === 0) delete view.networks[name];
}

export function fold(events: Iterable<StoredEvent>, from: ClusterView = emptyView()): ClusterView {
  for (const s of events) reduce(from, s);
  return from;
}

/** A container by id, name or unique id prefix. The first two are index lookups; a prefix scans the ids. */
export function findContainer(view: ClusterView, ref: string): ContainerView | undefined {
  const byId = own(view.containers, ref);
  if (byId) return byId;
  const named = indexOf(view).named(ref);
  if (named) return view.containers[named];
  if (!ID_PREFIX_RE.test(ref)) return undefined;
  let hit: string | undefined;
  for (const id in view.containers) {
    if (!id.startsWith(ref)) continue;
    if (hit !== undefined) return undefined;
    hit = id;
  }
  return hit === undefined ? undefined : view.containers[hit];
}

/** Why a container its node was to start, and never did, is not running (State.Error; ps -a). */
export const downBeforeStart = (node: string): string => `node ${node} went down before it started`;

/**
 * A node went down: each container it was to start and never did says why (its error) and
 * stays what it is, created. Not placed again: docker swarm reschedules only a service's
 * tasks (controller/services.ts does), a plain container waits for its node; the node, back,
 * starts it (ContainerStarted clears the error) or the user removes it.
 */
function strand(view: ClusterView, node: string, seq: number, ix: ViewIndex | undefined): void {
  const ids = ix ? ix.idsOnNode(node) : Object.keys(view.containers).filter((id) => view.containers[id].node === node);
  for (const id of ids) {
    const c = view.containers[id];
    if (c.state !== 'created' || c.desired !== 'running' || c.startedAt !== undefined || c.error !== undefined) continue;
    c.error = downBeforeStart(node);
    c.lastSeq = seq;
    ix?.touch(id, true, true);
  }
}

/** What the indices know of a container: they change only when one of these does. */
interface IndexKey { name: string; node: string; state: ContainerState; active: boolean; cpus: number; memory: number }

function keyOf(c: ContainerView): IndexKey {
  return {
    name: c.name, node: c.node, state: c.state,
    // what placement counts against a node: not on its way out, not finished
    active: c.desired !== 'removed' && c.state !== 'exited' && c.state !== 'failed',
    cpus: c.spec.resources?.cpus ?? 0, memory: c.spec.resources?.memory ?? 0,
  };
}

/** A node's share of active containers: what placement weighs. */
export interface NodeLoad { count: number; cpus: number; memory: number }

/** Dirty sets a snapshot writer registers: the containers and nodes changed since it last looked. */
export interface ChangeTracker { containers: Set<string>; nodes: Set<string> }

/**
 * Indices over a view's containers, so that a name check, a placement and `ps` of running
 * containers cost what they return, not the size of the view. Kept by reduce() for a view
 * that has one (made on first use by indexOf); never part of the view's data: a snapshot
 * holds the containers and the index is rebuilt from them.
 */
export class ViewIndex {
  /** name → id (or ids: the fold does not refuse a duplicate name, the controller does) */
  private byName = new Map<string, string | string[]>();
  private nodeIds = new Map<string, Set<string>>();
  private stateIds = new Map<ContainerState, Set<string>>();
  private loads = new Map<string, NodeLoad>();
  /** grows whenever a container enters or leaves the view (caches of whole listings key on it) */
  version = 0;
  readonly trackers = new Set<ChangeTracker>();
  /** how many containers the view holds */
  size = 0;
  private nodeCache?: { node: NodeView; load: NodeLoad }[];
  /**
   * Deferred (defer(), for a catch-up): the fold keeps only the trackers, the size and the
   * version; the maps are built from the containers on first use (complete()). A replay of 1M
   * events then pays for the containers it ends with, not for every change of every container
   * that came and went (the maps' upkeep was the largest part of the fold).
   */
  private lazy = false;
  /**
   * A deferred index's containers by node (and each one's node), made at the first lookup
   * (idsOnNode: a NodeDown, a forced NodeRemoved) and kept by touch() from then on. Without it
   * each NodeDown of a catch-up listed and filtered every container: ~35 ms at 100,000 (100
   * NodeDowns folded into a 100k-container snapshot: 3.1-3.4 s CPU before, 0.2 s with the map).
   */
  private lazyNodes?: Map<string, Set<string>>;
  private lazyNodeOf?: Map<string, string>;

  constructor(private view: ClusterView, deferred = false) {
    if (deferred) { this.lazy = true; for (const id in view.containers) { this.size += 1; this.version += 1; } }
    else for (const id in view.containers) this.update(id, undefined, keyOf(view.containers[id]));
  }

  get deferred(): boolean { return this.lazy; }
  get byNode(): ReadonlyMap<string, Set<string>> { this.complete(); return this.nodeIds; }
  get byState(): ReadonlyMap<ContainerState, Set<string>> { this.complete(); return this.stateIds; }
  /** per node, its active containers (desired not removed, not exited or failed) */
  get load(): ReadonlyMap<string, NodeLoad> { this.complete(); return this.loads; }

  /** From now on the maps wait (until complete() or their first use). */
  defer(): void {
    if (this.lazy) return;
    this.lazy = true;
    this.byName.clear(); this.nodeIds.clear(); this.stateIds.clear(); this.loads.clear(); this.nodeCache = undefined;
  }

  /** Builds the maps from the containers (a deferred index), and keeps them from then on. */
  complete(): void {
    if (!this.lazy) return;
    this.lazy = false;
    this.lazyNodes = undefined; this.lazyNodeOf = undefined;
    const cs = this.view.containers;
    for (const id in cs) this.index(id, undefined, keyOf(cs[id]));
  }

  /** A deferred index's update: the container `id` was there before (`had`) and is now (`has`). */
  touch(id: string, had: boolean, has: boolean): void {
    for (const t of this.trackers) t.containers.add(id);
    if (had !== has) { this.version += 1; this.size += has ? 1 : -1; }
    const by = this.lazyNodes;
    if (by) {
      const of = this.lazyNodeOf!;
      const was = of.get(id), now = has ? own(this.view.containers, id)?.node : undefined;
      if (was !== now) {
        if (was !== undefined) setDel(by, was, id);
        if (now === undefined) of.delete(id);
        else { setAdd(by, now, id); of.set(id, now); }
      }
    }
  }

  /** The ids of the containers on `node` (a copy: the caller may change them); deferred, without building the other maps. */
  idsOnNode(node: string): string[] {
    if (!this.lazy) return [...this.onNode(node)];
    let by = this.lazyNodes;
    if (!by) {
      by = this.lazyNodes = new Map();
      const of = (this.lazyNodeOf = new Map());
      const cs = this.view.containers;
      for (const id in cs) { const n = cs[id].node; of.set(id, n); setAdd(by, n, id); }
    }
    const ids = by.get(node);
    return ids ? [...ids] : [];
  }

  /** The id of the container called `name` (the first one, if the log holds duplicates). */
  named(name: string): string | undefined {
    this.complete();
    const v = this.byName.get(name);
    return typeof v === 'string' ? v : v?.[0];
  }

  ids(state: ContainerState): ReadonlySet<string> { this.complete(); return this.stateIds.get(state) ?? EMPTY; }
  onNode(node: string): ReadonlySet<string> { this.complete(); return this.nodeIds.get(node) ?? EMPTY; }
  loadOf(node: string): NodeLoad { this.complete(); return this.loads.get(node) ?? NO_LOAD; }

  /** Every change to view.nodes calls this (the reducer does): trackers learn it, the node list is made again. */
  touchNode(id: string): void {
    this.nodeCache = undefined;
    for (const t of this.trackers) t.nodes.add(id);
  }

  /** The joined nodes with their load, kept between node changes (Object.values of a big dictionary is slow). */
  nodes(): readonly { node: NodeView; load: NodeLoad }[] {
    this.complete();
    return (this.nodeCache ??= Object.values(this.view.nodes).map((node) => ({ node, load: this.loadEntry(node.id) })));
  }

  private loadEntry(node: string): NodeLoad {
    let l = this.loads.get(node);
    if (!l) this.loads.set(node, (l = { count: 0, cpus: 0, memory: 0 }));
    return l;
  }

  update(id: string, a: IndexKey | undefined, b: IndexKey | undefined): void {
    for (const t of this.trackers) t.containers.add(id);
    if (!a !== !b) { this.version += 1; this.size += b ? 1 : -1; }
    this.index(id, a, b);
  }

  /** The maps' part of update(). */
  private index(id: string, a: IndexKey | undefined, b: IndexKey | undefined): void {
    if (a?.name !== b?.name) {
      if (a) this.unname(a.name, id);
      if (b) { const v = this.byName.get(b.name); this.byName.set(b.name, v === undefined ? id : typeof v === 'string' ? [v, id] : [...v, id]); }
    }
    if (a?.node !== b?.node) {
      if (a) setDel(this.nodeIds, a.node, id);
      if (b) setAdd(this.nodeIds, b.node, id);
    }
    if (a?.state !== b?.state) {
      if (a) setDel(this.stateIds, a.state, id);
      if (b) setAdd(this.stateIds, b.state, id);
    }
    if (a?.active) this.addLoad(a.node, -1, -a.cpus, -a.memory);
    if (b?.active) this.addLoad(b.node, 1, b.cpus, b.memory);
  }

  private unname(name: string, id: string): void {
    const v = this.byName.get(name);
    if (v === id || v === undefined) { this.byName.delete(name); return; }
    if (typeof v === 'string') return;
    const rest = v.filter((x) => x !== id);
    this.byName.set(name, rest.length === 1 ? rest[0] : rest);
  }

  // entries stay at zero: the node list holds them
  private addLoad(node: string, count: number, cpus: number, memory: number): void {
    const l = this.loadEntry(node);
    l.count += count; l.cpus += cpus; l.memory += memory;
  }
}

const EMPTY: ReadonlySet<string> = new Set();
const NO_LOAD: NodeLoad = Object.freeze({ count: 0, cpus: 0, memory: 0 });
const INDEX = new WeakMap<ClusterView, ViewIndex>();

/** The view's index, made from its containers on first use and kept by reduce() from then on. */
export function indexOf(view: ClusterView): ViewIndex {
  let ix = INDEX.get(view);
  if (!ix) INDEX.set(view, (ix = new ViewIndex(view)));
  return ix;
}

/**
 * The view's index with its maps deferred (ViewIndex.defer): a catch-up's fold keeps only its
 * trackers and size, and the maps are built once from the containers it ends with.
 */
export function deferredIndexOf(view: ClusterView): ViewIndex {
  let ix = INDEX.get(view);
  if (!ix) INDEX.set(view, (ix = new ViewIndex(view, true)));
  else ix.defer();
  return ix;
}

function setAdd<K>(m: Map<K, Set<string>>, k: K, id: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(id);
}

function setDel<K>(m: Map<K, Set<string>>, k: K, id: string): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(k);
}

function mergeLimits(a: ResourceLimits | undefined, b: ResourceLimits): ResourceLimits {
  return { ...(a ?? {}), ...b };
}

function pushCapped<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > MAX_KEPT) list.splice(0, list.length - MAX_KEPT);
}

/** A claim whose name its own claimer's request has taken: no longer pending, whatever happens to that entity later. */
function markUsed(view: ClusterView, key: string, entity: string): void {
  const c = view.claims?.[key];
  if (c && c.entity === entity) c.used = true;
}
