// The controller's verbs (subject api.<verb>): request checks and reply types, shared by
// the controller that serves them and every client. A verb's check looks at shapes and
// sizes; what a request means (does the image exist, is the name free) the controller decides.
import { arr, bool, int, num, obj, oneOf, opt, str, type Check } from '../validate.js';
import { limits, port, security, MAX_LAYERS, LABEL_KEY_RE, USER_SPEC_RE, GROUP_RE, taskTemplate, containerLabels, MAX_REPLICAS, restartPolicy } from '../schema.js';
import type { RestartPolicy } from '../restart-policy.js';
import { healthcheckCheck, type Healthcheck } from '../health.js';
import { verb } from '../rpc.js';
import type { PortMapping, ResourceLimits, ServiceMode, TaskTemplate, UpdateConfig } from '../events.js';
import type { SecurityOptions } from '../security.js';
import { mountCheck, MAX_MOUNTS, type VolumeMount } from '../volumes.js';
import { MAX_CONSTRAINTS } from '../constraints.js';
import { hostConfigShape, type HostConfig } from '../host-config.js';
import type { ContainerView, ImageView, NetworkView, NodeView, ServiceView } from '../reducer.js';
import { execProcess, containerPath, topName, MAX_COPY_IN, type ExecReply, type CopyInReply } from './agent.js';

const ref = str(256);
/** Containers per ps page at most: a page stays well under NATS's 1 MiB payload (a container is ~1 KB of JSON, more with a long command). */
export const PS_PAGE_MAX = 200;
const user = opt(str(256));
/** A ps reply's budget in bytes of JSON: a page ends before it would pass it (NATS's payload limit is 1 MiB). */
export const PS_PAGE_BYTES = 768 * 1024;

/** `ps --filter`: each key's values are alternatives (any may match), different keys must all match, as docker's. */
export interface PsFilter { name?: string[]; node?: string[]; status?: string[]; id?: string[]; label?: string[] }
export const PS_STATUSES = ['created', 'running', 'exited', 'failed', 'removing', 'rejected'] as const;
const psFilter = obj({
  name: opt(arr(str(256), 16)), node: opt(arr(str(64), 16)),
  status: opt(arr(str(16, new RegExp(`^(${PS_STATUSES.join('|')})$`)), 16)), id: opt(arr(str(64), 16)),
  // KEY or KEY=VALUE; unlike the other keys, every label filter must hold (as docker's)
  label: opt(arr(str(4225), 16)),
}) as Check<PsFilter>;
export interface PsRequest { all?: boolean; offset?: number; limit?: number; filter?: PsFilter; last?: number }
const name = str(256);

export interface RunRequest extends HostConfig {
  id?: string; image: string; args?: string[]; env?: string[]; name?: string; hostname?: string;
  workdir?: string; network?: string; autoRemove?: boolean; ports?: PortMapping[]; resources?: ResourceLimits; security?: SecurityOptions; mounts?: VolumeMount[]; user?: string;
  /** --entrypoint: replaces the image's Entrypoint ('' clears it) and drops its Cmd */
  entrypoint?: string;
  /** --pid / --ipc: host or container:<name|id>; --uts: host */
  pidMode?: string; ipcMode?: string; utsMode?: string;
  processUser?: string; groupAdd?: string[]; readOnly?: boolean; init?: boolean;
  /** --volumes-from CONTAINER[:ro|:rw]: that container's volumes and binds, on its node */
  volumesFrom?: string[];
  /** --label KEY=VALUE (over the image's Labels) */
  labels?: Record<string, string>;
  /** -P: every port the image exposes, on a free host port of its node */
  publishAll?: boolean;
  tty?: { rows: number; cols: number };
  /** -i: stdin kept open for the caller's input (agent/attach.ts) */
  interactive?: boolean;
  /** --constraint node.labels.zone==a (shared/constraints.ts) */
  constraints?: string[];
  /** --restart, --stop-signal, --stop-timeout (controller/api/run-lifecycle.ts); `create`: tsctl create (placed and prepared, not started) */
  restartPolicy?: RestartPolicy; stopSignal?: string; stopTimeout?: number; create?: boolean;
  /** --health-* (a Test of [] keeps the image's) or --no-healthcheck (Test ["NONE"]), merged over the image's Healthcheck */
  healthcheck?: Healthcheck;
}
const runRequest = obj({
  id: opt(str(64)), image: str(256), args: opt(arr(str(65536), 4096)), env: opt(arr(str(65536), 4096)),
  name: opt(str(256)), hostname: opt(str(256)), workdir: opt(str(4096)), network: opt(str(200)),
  autoRemove: opt(bool), ports: opt(arr(port, 256)), resources: opt(limits), security: opt(security), mounts: opt(arr(mountCheck, MAX_MOUNTS)), entrypoint: opt(str(65536)), user,
  pidMode: opt(str(266, /^(host|container:.{1,256})$/)), ipcMode: opt(str(266, /^(host|container:.{1,256})$/)), utsMode: opt(str(4, /^host$/)),
  processUser: opt(str(129, USER_SPEC_RE)), groupAdd: opt(arr(str(64, GROUP_RE), 32)), readOnly: opt(bool), init: opt(bool), labels: opt(containerLabels), publishAll: opt(bool),
  volumesFrom: opt(arr(str(200), 16)),
  tty: opt(obj({ rows: int(0, 4096), cols: int(0, 4096) })),
  interactive: opt(bool),
  constraints: opt(arr(str(512), MAX_CONSTRAINTS)),
  ...hostConfigShape,
  restartPolicy: opt(restartPolicy), stopSignal: opt(str(32)), stopTimeout: opt(int(0, 86400)), create: opt(bool),
  healthcheck: opt(healthcheckCheck),
}) as Check<RunRequest>;

/** What a container verb answers: the container, the event that asked, its state when asked. */
export interface DesireReply { id: string; name: string; eventId: string; state: string }

export interface NetworkListEntry {
  name: string; driver: string; subnet: string; gateway?: string; builtin: boolean; nodes: string[]; createdAt?: number;
}
export interface NetworkInspectReply {
  name: string; driver: string; subnet: string | null; gateway: string | null; createdBy: string | null;
  nodes: NetworkView['nodes'];
  containers: { id: string; name: string; node: string; ip: string | null; state: string }[];
}
/** A named volume as volume ls|inspect show it: `containers` names those of its node that use it. */
export interface VolumeEntry {
  name: string; node: string; driver: 'local'; state: string; mountpoint: string | null; labels: Record<string, string>;
  createdAt: number; createdBy: string; containers: { id: string; name: string; state: string }[];
  /** made for one container (-v /path, an image's VOLUME) */
  anonymous?: boolean;
}
/** `node`: which node's volume (needed where two nodes have one of that name). */
export interface VolumeRef { name: string; node?: string; user?: string }
const volumeRef = obj({ name: str(256), node: opt(str(64)), user }) as Check<VolumeRef>;

export interface InfoReply { seq: number; sources: Record<string, { srcSeq: number; hash: string }>; chainIssues: number; forged?: number }

/** tsctl exec: `execId` is the client's (it subscribes to the output first); `user` is the caller. */
export interface ExecCall {
  ref: string; execId: string; args: string[]; env?: string[]; workdir?: string; processUser?: string; interactive?: boolean; user?: string;
  tty?: { rows: number; cols: number };
}

export interface CopyInCall { ref: string; transfer: string; size: number; digest: string; dest: string; name?: string; archive?: boolean; user?: string }

export interface NodeUpdateRequest { node: string; availability?: 'active' | 'pause' | 'drain'; labelAdd?: string[]; labelRm?: string[]; user?: string }

/** --update-* / --rollback-* as given: each field absent keeps what the service had (docker's defaults at first). */
export type UpdatePolicyRequest = Partial<UpdateConfig>;
const updatePolicy = obj({
  parallelism: opt(int(0, MAX_REPLICAS)), delayMs: opt(int(0, 86_400_000)), order: opt(oneOf('stop-first', 'start-first')),
  monitorMs: opt(int(0, 86_400_000)), failureAction: opt(oneOf('pause', 'continue', 'rollback')), maxFailureRatio: opt(num(0, 1)),
}) as Check<UpdatePolicyRequest>;
const stopGraceS = opt(int(0, 86400));

/** tsctl service create: the service's name, mode and count, what each task runs, where, its restart policy and how updates roll. */
export interface ServiceCreateRequest {
  name: string; mode?: string; replicas?: number; task: TaskTemplate; constraints?: string[]; placementPrefs?: string[];
  restartCondition?: string; restartMaxAttempts?: number; restartDelayMs?: number; user?: string;
  update?: UpdatePolicyRequest; rollback?: UpdatePolicyRequest; stopGraceS?: number;
}
const serviceCreate = obj({
  name: str(256), mode: opt(str(32)), replicas: opt(int(0, Number.MAX_SAFE_INTEGER)), task: taskTemplate,
  constraints: opt(arr(str(512), 64)), placementPrefs: opt(arr(str(512), 64)), restartCondition: opt(str(32)), restartMaxAttempts: opt(int(0, Number.MAX_SAFE_INTEGER)),
  restartDelayMs: opt(int(0, Number.MAX_SAFE_INTEGER)), user,
  update: opt(updatePolicy), rollback: opt(updatePolicy), stopGraceS,
}) as Check<ServiceCreateRequest>;

/**
 * tsctl service update: what changes (absent: unchanged). `envAdd` KEY=VALUE replaces a
 * variable of that name, `envRm` KEY removes it; `resources` merge over the current limits.
 */
export interface ServiceUpdateRequest {
  ref: string; user?: string; image?: string; args?: string[]; envAdd?: string[]; envRm?: string[]; workdir?: string; entrypoint?: string;
  resources?: ResourceLimits; replicas?: number; update?: UpdatePolicyRequest; rollback?: UpdatePolicyRequest; stopGraceS?: number;
  /** --placement-pref-add / -rm: spread=node.labels.K; --force: a new version even if nothing changed (every task replaced) */
  placementPrefAdd?: string[]; placementPrefRm?: string[]; force?: boolean;
  /** --mount-add (replaces a mount on the same target) and --mount-rm TARGET, as docker service update */
  mountAdd?: VolumeMount[]; mountRm?: string[];
}
const serviceUpdate = obj({
  ref, user, image: opt(str(256)), args: opt(arr(str(65536), 4096)), envAdd: opt(arr(str(65536), 4096)), envRm: opt(arr(str(4096), 4096)),
  workdir: opt(str(4096)), entrypoint: opt(str(65536)), resources: opt(limits), replicas: opt(int(0, Number.MAX_SAFE_INTEGER)),
  update: opt(updatePolicy), rollback: opt(updatePolicy), stopGraceS,
  placementPrefAdd: opt(arr(str(512), 64)), placementPrefRm: opt(arr(str(512), 64)), force: opt(bool),
  mountAdd: opt(arr(mountCheck, MAX_MOUNTS)), mountRm: opt(arr(str(4096), MAX_MOUNTS)),
}) as Check<ServiceUpdateRequest>;

/** A line of tsctl service ls. */
export interface ServiceListEntry { id: string; name: string; mode: ServiceMode; replicas: number; running: number; image: string; ports: PortMapping[]; pending: number }
/** A row of tsctl service ps: a task (with its container), or a slot waiting for one (`pending`, with the reason). */
export interface ServiceTaskRow {
  slot: string; task?: number; name: string; id?: string; node?: string; state: string; desired?: string;
  error?: string; exitCode?: number; createdAt?: number; attempt?: number; reason?: string;
  /** the service spec version the task runs (a rolling update replaces the older ones) */
  version?: number;
}

/** A layer of an image.import a pull verified and puts into the object store after its answer (controller/api/images.ts). */
export interface PendingLayer { layer: string; size: number }

export const controllerApi = {
  run: verb<RunRequest, { id: string; name: string; node: string }>('run', runRequest),
  /** A page of containers, newest first; `next` is the offset of the next page, absent on the last. */
  /** `filter` and `last` (the N newest, any state) are applied by the controller; a page stops at PS_PAGE_MAX items or PS_PAGE_BYTES. */
  ps: verb<PsRequest, { items: ContainerView[]; next?: number }>('ps',
    obj({ all: opt(bool), offset: opt(int(0, Number.MAX_SAFE_INTEGER)), limit: opt(int(1, PS_PAGE_MAX)), filter: opt(psFilter), last: opt(int(1, Number.MAX_SAFE_INTEGER)) }) as Check<PsRequest>, { readOnly: true }),
  inspect: verb<{ ref: string }, ContainerView>('inspect', obj({ ref }), { readOnly: true }),
  stop: verb<{ ref: string; timeout?: number; user?: string }, DesireReply>('stop', obj({ ref, timeout: opt(int(0, 86400)), user })),
  kill: verb<{ ref: string; signal?: string; user?: string }, DesireReply>('kill', obj({ ref, signal: opt(str(32)), user })),
  /** `volumes`: rm -v, the container's anonymous volumes are removed with it */
  rm: verb<{ ref: string; force?: boolean; volumes?: boolean; user?: string }, DesireReply>('rm', obj({ ref, force: opt(bool), volumes: opt(bool), user })),
  update: verb<{ ref: string; resources: ResourceLimits; user?: string }, DesireReply>('update', obj({ ref, resources: limits, user }) as Check<{ ref: string; resources: ResourceLimits; user?: string }>),
  nodes: verb<Record<string, never>, NodeView[]>('nodes', obj({}), { readOnly: true }),
  /** docker node update: availability, labels to add (key=value) and to remove (key) */
  nodeUpdate: verb<NodeUpdateRequest, { node: string }>('node.update', obj({
    node: str(64), availability: opt(oneOf('active', 'pause', 'drain')),
    labelAdd: opt(arr(str(385, /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}=/), 64)), labelRm: opt(arr(str(128, LABEL_KEY_RE), 64)), user,
  })),
  nodeRm: verb<{ node: string; force?: boolean; user?: string }, { node: string }>('node.rm', obj({ node: str(64), force: opt(bool), user })),
  /** `layers` (bottom first) with `digest` the config's: a layered image whose blobs are all in the object store. */
  /** `hold`: the image.hold this import ends (its blobs are then the image's: in use). */
  imageImport: verb<{ name: string; digest: string; layers?: string[]; source?: string; user?: string; pending?: PendingLayer[]; hold?: string }, { name: string; digest: string }>('image.import',
    obj({ name, digest: str(80), layers: opt(arr(str(80), MAX_LAYERS)), source: opt(str(512)), user, pending: opt(arr(obj({ layer: str(80), size: num(0, Number.MAX_SAFE_INTEGER) }), MAX_LAYERS)), hold: opt(str(64)) })),
  /**
   * Keeps `blobs` from image rm, a fill's word and image.gc until the import naming `hold` in
   * its reply (or `release` here, or an hour): what a pull or load found in the store or is
   * putting, between its look and its import (controller/api/images.ts BlobHolds).
   */
  imageHold: verb<{ blobs?: string[]; release?: string; user?: string }, { hold?: string }>('image.hold',
    obj({ blobs: opt(arr(str(80), MAX_LAYERS + 1)), release: opt(str(64)), user })),
  imageLs: verb<Record<string, never>, ImageView[]>('image.ls', obj({}), { readOnly: true }),
  imageRm: verb<{ name: string; force?: boolean; user?: string }, { name: string }>('image.rm', obj({ name, force: opt(bool), user })),
  /**
   * A deferred fill's layer (tsctl/image-pull.ts), asked before its put (`done` absent: is it still
   * wanted?) and told after it (`done`: the controller removes it at once when nothing wants it
   * now, so an image rm that ran meanwhile leaves no object behind).
   */
  imageFill: verb<{ layer: string; done?: boolean; user?: string }, { wanted: boolean }>('image.fill', obj({ layer: str(80), done: opt(bool), user })),
  /** The image store's blobs no image or container uses, put more than `graceMs` ago (default an hour): removed; the reply lists them. */
  imageGc: verb<{ graceMs?: number; user?: string }, { removed: { digest: string; size: number }[] }>('image.gc', obj({ graceMs: opt(int(0, 366 * 86400_000)), user })),
  networkCreate: verb<{ name: string; subnet?: string; gateway?: string; user?: string }, { name: string; subnet: string }>('network.create',
    obj({ name, subnet: opt(str(64)), gateway: opt(str(64)), user })),
  networkRm: verb<{ name: string; user?: string }, { name: string }>('network.rm', obj({ name, user })),
  networkLs: verb<Record<string, never>, NetworkListEntry[]>('network.ls', obj({}), { readOnly: true }),
  networkInspect: verb<{ name: string }, NetworkInspectReply>('network.inspect', obj({ name }), { readOnly: true }),
  /** A named volume on one node (`node`, or the cluster's only node); `labels` as key=value. */
  volumeCreate: verb<{ name: string; node?: string; labels?: string[]; user?: string }, { name: string; node: string }>('volume.create',
    obj({ name: str(256), node: opt(str(64)), labels: opt(arr(str(385), 64)), user })),
  volumeLs: verb<{ node?: string }, VolumeEntry[]>('volume.ls', obj({ node: opt(str(64)) }), { readOnly: true }),
  volumeInspect: verb<VolumeRef, VolumeEntry>('volume.inspect', volumeRef, { readOnly: true }),
  /** Refused while a container (running or stopped) uses it. */
  volumeRm: verb<VolumeRef, { name: string; node: string }>('volume.rm', volumeRef),
  /** Removes every volume no container uses (of `node`, or every node); the reply lists them. */
  volumePrune: verb<{ node?: string; all?: boolean; user?: string }, { removed: { name: string; node: string }[] }>('volume.prune', obj({ node: opt(str(64)), all: opt(bool), user })),
  info: verb<Record<string, never>, InfoReply>('info', obj({}), { readOnly: true }),
  pause: verb<{ ref: string; user?: string }, DesireReply>('pause', obj({ ref, user })),
  unpause: verb<{ ref: string; user?: string }, DesireReply>('unpause', obj({ ref, user })),
  rename: verb<{ ref: string; name: string; user?: string }, DesireReply>('rename', obj({ ref, name: str(256), user })),
  /** docker start: a created or exited container started again on its node (same writable layer) */
  start: verb<{ ref: string; user?: string }, DesireReply>('start', obj({ ref, user })),
  /** docker restart: its stop (with `timeout`, else its --stop-timeout, else 10 s) then its start */
  restart: verb<{ ref: string; timeout?: number; user?: string }, DesireReply>('restart', obj({ ref, timeout: opt(int(0, 86400)), user })),
  /** Runs a process in a running container, on its node; not serialised with mutations (it changes no name). */
  exec: verb<ExecCall, ExecReply>('exec', obj({ ref, execId: str(64, /^[0-9a-f]{64}$/), ...execProcess, user }) as Check<ExecCall>, { readOnly: true }),
  /** tsctl cp into a container: unpack what the client staged on the container's node (agent.<node>.put). */
  copyIn: verb<CopyInCall, CopyInReply>('copy.in', obj({
    ref, transfer: str(32, /^[0-9a-f]{32}$/), size: int(1024, MAX_COPY_IN), digest: str(71, /^sha256:[0-9a-f]{64}$/), dest: containerPath, name: opt(topName), archive: opt(bool), user,
  })),
  /** A join token's one use: the caller (a join-<hex> identity) becomes node `node`; the reply is its credentials. */
  join: verb<{ node: string; user?: string }, { creds: string }>('join', obj({ node: str(64, /^[a-z0-9_-]{1,64}$/), user })),
  /**
   * Retention (admin only, the server refuses anyone else): seal #1..#before-1 into archive
   * segments and record them in the anchor; the caller then purges the stream below `before`.
   */
  logArchive: verb<{ before: number; user?: string }, ArchiveReply>('log.archive', obj({ before: int(2, Number.MAX_SAFE_INTEGER), user })),
  // services (controller/api/services.ts): desired state the active controller reconciles
  serviceCreate: verb<ServiceCreateRequest, { id: string; name: string }>('service.create', serviceCreate),
  serviceLs: verb<Record<string, never>, ServiceListEntry[]>('service.ls', obj({}), { readOnly: true }),
  servicePs: verb<{ ref: string }, ServiceTaskRow[]>('service.ps', obj({ ref }), { readOnly: true }),
  serviceInspect: verb<{ ref: string }, ServiceView>('service.inspect', obj({ ref }), { readOnly: true }),
  /** docker service scale web=N: replicated services only */
  serviceScale: verb<{ ref: string; replicas: number; user?: string }, { id: string; name: string; replicas: number }>('service.scale',
    obj({ ref, replicas: int(0, Number.MAX_SAFE_INTEGER), user })),
  serviceRm: verb<{ ref: string; user?: string }, { id: string; name: string }>('service.rm', obj({ ref, user })),
  /** docker service update: a new spec rolled over the tasks (controller/rolling.ts) */
  serviceUpdate: verb<ServiceUpdateRequest, { id: string; name: string; version: number }>('service.update', serviceUpdate),
  /** docker service rollback: back to the spec before the last update, rolled with its rollback policy (overridable) */
  serviceRollback: verb<{ ref: string; rollback?: UpdatePolicyRequest; user?: string }, { id: string; name: string; version: number }>('service.rollback',
    obj({ ref, rollback: opt(updatePolicy), user }) as Check<{ ref: string; rollback?: UpdatePolicyRequest; user?: string }>),
} as const;

/** What `log.archive` sealed: the archive now covers #1..#through; `names`: the segments made by this call. */
export interface ArchiveReply { through: number; segments: number; names: string[] }

export type ControllerApi = typeof controllerApi;
