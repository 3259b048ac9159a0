// The event schema: one discriminated union on `type`, one envelope for all.
// Everything the cluster knows is a fold of these (see reducer.ts).

import type { VolumeMount } from './volumes.js';
import type { SecurityOptions } from './security.js';
import type { HostConfig } from './host-config.js';
import type { RestartPolicy } from './restart-policy.js';
import type { Healthcheck, HealthProbe, HealthStatus } from './health.js';

export const SCHEMA_VERSION = 1;

export type NetworkMode = string; // 'bridge' | 'host' | 'none' | 'container:<id|name>' | user network name

export interface PortMapping { host: number; container: number; proto: 'tcp' | 'udp'; hostIp?: string }

export interface ResourceLimits {
  cpus?: number; cpuShares?: number; cpusetCpus?: string;
  memory?: number; memorySwap?: number; pidsLimit?: number; blkioWeight?: number;
}

/** Why a supervised process was started again (ops/supervise or systemd wrote it down). */
export interface RestartInfo {
  /** restarts since the cluster came up */
  count: number;
  /** wait status as the shell gives it: the exit code, or 128+n for signal n */
  status: number;
  exit: string;
  upMs: number;
  exitedAt: string;
  by: string;
}

/** HostConfig: --privileged (admins), --sysctl, --shm-size, --dns/--dns-search/--dns-option, --add-host (shared/host-config.ts) */
export interface ContainerSpec extends HostConfig {
  name: string;
  image: string;        // the name the user gave
  imageDigest: string;  // sha256:<hex> the name resolved to when requested
  /** The image's layers (uncompressed tar digests), bottom first; absent: the image is the one layer imageDigest. */
  layers?: string[];
  args: string[];
  env: string[];
  hostname: string;
  workdir: string;
  network: NetworkMode;
  autoRemove: boolean;
  resources?: ResourceLimits;
  ports?: PortMapping[];
  /** --device, --security-opt, --ulimit, --cap-add/--cap-drop, --oom-score-adj (shared/security.ts) */
  security?: SecurityOptions;
  /** -v and --tmpfs (shared/volumes.ts) */
  mounts?: VolumeMount[];
  /** --pid / --ipc: 'host' or 'container:<id>' (the container's own when absent); --uts: 'host' */
  pidMode?: string;
  ipcMode?: string;
  utsMode?: string;
  /** --user user[:group] and --group-add, resolved in the image's /etc/passwd and /etc/group by the node */
  processUser?: string;
  groupAdd?: string[];
  /** --read-only: the root filesystem mounted read-only (volumes and --tmpfs stay as they are) */
  readOnly?: boolean;
  /** --init: pid 1 reaps orphans and forwards signals; the command runs as its child */
  init?: boolean;
  /** --label KEY=VALUE over the image's Labels (docker's Config.Labels; ps --filter label=) */
  labels?: Record<string, string>;
  /** -t: a pty in the container as the command's terminal, of this first size (0 0: unset) */
  tty?: { rows: number; cols: number };
  /** -i: stdin kept open; its owner (the user who ran it) writes it on stdin.<node>.<owner>.<id> (agent/attach.ts) */
  interactive?: boolean;
  /** --constraint node.labels.zone==a (shared/constraints.ts): where placement may put it */
  constraints?: string[];
  /** The service task this container is (controller/services.ts); only the controller sets it. */
  service?: TaskOf;
  /** --restart (shared/restart-policy.ts): its node starts it again after an exit, with docker's back-off */
  restartPolicy?: RestartPolicy;
  /** --stop-signal (or the image's StopSignal) and --stop-timeout: what stop and restart send first, and how long they wait before SIGKILL */
  stopSignal?: string;
  stopTimeout?: number;
  /** --health-* over the image's Healthcheck (shared/health.ts), docker's fields; Test ["NONE"]: none (--no-healthcheck) */
  healthcheck?: Healthcheck;
}

/** Which service task a container is: its service, its slot (1…N, or a node id in global mode), its number, and how many times its slot was restarted after an exit. */
export interface TaskOf { id: string; name: string; slot: string; task: number; attempt: number; version?: number }

export type RestartCondition = 'none' | 'on-failure' | 'any';
export type ServiceMode = 'replicated' | 'global';

/** What every task of a service runs: a run request's fields (the image is resolved at each placement). */
export interface TaskTemplate {
  image: string; args?: string[]; env?: string[]; workdir?: string; network?: string; entrypoint?: string;
  resources?: ResourceLimits; ports?: PortMapping[];
  /** --mount: each task's mounts; a volume without a source gives every task an anonymous one of its own */
  mounts?: VolumeMount[];
}

/**
 * How a changed task spec rolls over the tasks (docker's --update-* and --rollback-*): this
 * many slots at a time, a wait between batches, the old task stopped before its replacement
 * starts or after it runs, how long a new task is watched (one that ends within it failed),
 * what a failure does, and the share of failed tasks tolerated.
 */
export interface UpdateConfig {
  parallelism: number; delayMs: number; order: 'stop-first' | 'start-first'; monitorMs: number;
  failureAction: 'pause' | 'continue' | 'rollback'; maxFailureRatio: number;
}

/** A service: desired state the active controller reconciles (controller/services.ts). */
export interface ServiceSpec {
  name: string;
  mode: ServiceMode;
  /** replicated: how many tasks; global: 0 (one per eligible node) */
  replicas: number;
  task: TaskTemplate;
  constraints?: string[];
  /** --placement-pref spread=node.labels.zone (shared/placement-prefs.ts): how its tasks spread over label groups */
  placementPrefs?: string[];
  /** when a task that exited is replaced: condition, the most replacements per slot (0: no limit), the wait after the exit */
  restart: { condition: RestartCondition; maxAttempts: number; delayMs: number };
  /** rolling update and rollback settings (controller/rolling.ts); absent: docker's defaults */
  update?: UpdateConfig;
  rollback?: UpdateConfig;
  /** seconds an old task gets between SIGTERM and SIGKILL when an update stops it (default 10) */
  stopGraceS?: number;
}

/** Where new work may go: anywhere (active), no new work (pause), and move it away (drain). */
export type NodeAvailability = 'active' | 'pause' | 'drain';

/** Payloads, keyed by event type. */
export interface EventData {
  // desired, written by the controller on ev.desired.<node>.<ctr>
  /** `create`: placed and prepared but not started (tsctl create): its node answers ContainerCreated */
  ContainerRequested: { node: string; spec: ContainerSpec; user: string; create?: boolean };
  /** tsctl start (and the second half of tsctl restart): start a created or exited container again, same writable layer */
  ContainerStartRequested: { user: string };
  ContainerStopRequested: { timeout: number; user: string };
  ContainerKillRequested: { signal: string; user: string };
  /** `volumes`: rm -v, the container's anonymous volumes go with it */
  ContainerRemoveRequested: { force: boolean; volumes?: boolean; user: string };
  ContainerUpdateRequested: { resources: ResourceLimits; user: string };
  // tsctl pause/unpause (the freezer) and rename; a rename is the controller's alone (the node keeps it as applied)
  ContainerPauseRequested: { user: string };
  ContainerUnpauseRequested: { user: string };
  ContainerRenameRequested: { name: string; user: string };
  // networks, written by the controller on ev.desired.<node>.net-<name> for every node
  NetworkCreateRequested: { node: string; name: string; subnet: string; gateway?: string; user: string };
  NetworkRemoveRequested: { node: string; name: string; user: string };
  // named volumes of one node, written by the controller on ev.desired.<node>.<volumeEntity(name)>
  // (tsctl volume create|rm|prune, and a run whose -v names a volume the node does not have yet)
  VolumeCreateRequested: { node: string; name: string; labels?: Record<string, string>; anonymous?: boolean; user: string };
  VolumeRemoveRequested: { node: string; name: string; user: string };
  // images, written by the controller on ev.image.<hex>
  /**
   * `digest`: a one-layer rootfs tar, or (with `layers`) the image config's digest, the
   * image id as docker has it; `layers` are its uncompressed layer digests, bottom first;
   * `source` the registry reference it was pulled from (or the file it was loaded from).
   */
  ImageImported: { name: string; digest: string; size: number; user: string; layers?: string[]; source?: string };
  ImageRemoved: { name: string; digest: string; user: string };
  // cluster membership, written by the controller on ev.cluster.<node>
  NodeRemoved: { force: boolean; user: string };
  /** the node's agent was not heard for `silenceMs` (its heartbeats, core subject hb.<node>) */
  NodeDown: { silenceMs: number; lastSeen?: number };
  /** heard again after a NodeDown; `downMs`: how long it was down as the controller saw it */
  NodeReady: { downMs?: number };
  /** what the operator said of the node (tsctl node update): where new work may go, its labels */
  NodeUpdated: { availability?: NodeAvailability; labelAdd?: Record<string, string>; labelRm?: string[]; user: string };
  // services, written by the controller on ev.service.<id> (entity: the service id)
  ServiceCreated: { spec: ServiceSpec; user: string };
  /** tsctl service scale: the new replica count */
  ServiceUpdated: { replicas: number; user: string };
  ServiceRemoved: { user: string };
  /**
   * service update / rollback: `spec` is wanted from now on and rolled over the tasks with
   * `policy` (controller/rolling.ts); the spec before it is kept for a rollback. `rollback`: it
   * goes back to the previous spec (asked, or the failure action); `reason` says why.
   */
  /** `force`: tsctl service update --force: a new version (every task replaced) even if the tasks' spec is the same */
  ServiceUpdateStarted: { spec: ServiceSpec; policy: UpdateConfig; user: string; rollback?: boolean; reason?: string; force?: boolean };
  /** the update stopped replacing tasks (failure action pause); a new update or rollback resumes */
  ServiceUpdatePaused: { reason: string };
  /** every wanted slot runs the current spec: the update (or rollback) is done */
  ServiceUpdateCompleted: Record<string, never>;
  /** a slot of the service has no task now, and why (placement's reason); appended when the reason changes */
  ServiceTaskPending: { slot: string; reason: string };
  // observed, written by an agent on ev.state.<node>.<ctr> and ev.node.<node>
  /** `restartCount`: a start its restart policy made, the n-th since the last start a user asked for */
  ContainerStarted: { pid: number; receivedAt: number; runningAt: number; ip?: string; restartCount?: number };
  /** `restartInMs`: its restart policy starts it again after this back-off */
  ContainerExited: { exitCode: number; signal?: string; oomKilled: boolean; exitedAt: number; whileAway?: boolean; restartInMs?: number };
  /** A created container is prepared on its node (root, network, cgroups, config), not started. */
  ContainerCreated: { ip?: string };
  ContainerFailed: { error: string; exitCode: number };
  /**
   * Its health check's status changed (agent/health.ts; only changes, not every probe): the run
   * it is about (`runningAt`, ContainerStarted's), the consecutive failures, the last probes.
   */
  ContainerHealthChanged: { status: HealthStatus; failingStreak: number; runningAt: number; log: HealthProbe[] };
  ContainerRemoved: { reason: string };
  ContainerUpdated: { resources: ResourceLimits };
  /** Every task of the container is frozen (cgroup freezer), or thawed again. */
  ContainerPaused: Record<string, never>;
  ContainerUnpaused: Record<string, never>;
  NetworkCreated: { name: string; subnet: string; gateway: string; bridge: string };
  NetworkRemoved: { name: string };
  /** The node made (or already had) the volume's directory, `mountpoint` its host path. */
  VolumeCreated: { name: string; mountpoint: string };
  /** The node removed the volume's directory and everything in it. */
  VolumeRemoved: { name: string };
  /** `gone`: the node has no such container (never had it, or removed it), so nothing of it is left to manage. */
  EventRejected: { reason: string; rejectedSeq: number; rejectedId?: string; rejectedType?: string; gone?: boolean };
  // exec (tsctl exec), written by the node that runs the container on ev.state.<node>.<ctr>:
  // who ran what (`user` is the identity the controller authenticated), its host pid, its end
  ExecStarted: { execId: string; user: string; args: string[]; workdir?: string; processUser?: string; interactive?: boolean; pid: number };
  ExecExited: { execId: string; exitCode: number; signal?: string; exitedAt: number };
  /** The process never ran (no such command, unknown user, bad workdir): docker's code 125/126/127. */
  ExecFailed: { execId: string; user: string; args: string[]; error: string; exitCode: number };
  /** tsctl cp into the container, unpacked by its node: who, where, and the archive's sha256. */
  ContainerFilesCopied: { user: string; dest: string; entries: number; bytes: number; digest: string };
  NodeJoined: { hostname: string; cpus: number; memory: number; kernel: string; features: string[]; version: string; allocated?: { cpus: number; memory: number }; restart?: RestartInfo };
  // the controller's own start, on ev.controller (with why, when it was a restart)
  ControllerStarted: { version: string; restart?: RestartInfo };
  /**
   * This controller holds the leader lease (controller/lease.ts) from now on: `host` runs it,
   * `term` is the lease key's revision when it was taken (grows with every takeover), `ttlMs`
   * the lease's time to live. On ev.controller; the audit shows who led when.
   */
  ControllerLeading: { host: string; term: number; ttlMs: number };
  /**
   * A name taken (a container's, a network's), on ev.claim.<kind>.<key>, appended with the
   * subject's expected last sequence: two controllers that both believe they lead cannot both
   * claim it (controller/lease.ts). `entity` is who took it.
   */
  Claimed: { kind: ClaimKind; key: string };
  /**
   * The source's signing key (ed25519 public, hex) with the cluster root's signature over
   * (source, key); on ev.keys.<identity>, signed by the key itself (shared/signing.ts).
   */
  KeyRegistered: { key: string; rootSig: string };
}

export type EventType = keyof EventData;

/** What a Claimed event takes: a container name, a network name. */
export type ClaimKind = 'container' | 'network' | 'service';

export interface Envelope<T extends EventType = EventType> {
  v: number;
  id: string;
  type: T;
  ts: number;
  src: string;      // 'controller' | 'node:<id>'
  srcSeq: number;   // 1, 2, 3 … per source
  prev: string;     // sha256 hex of that source's previous event ('' for the first)
  entity: string;
  cause?: string;
  data: EventData[T];
}

export type AnyEvent = { [K in EventType]: Envelope<K> }[EventType];

/** An event as read from the stream: its position and the hash of its wire bytes. */
export interface StoredEvent { seq: number; hash: string; event: AnyEvent; sig?: string; bytes?: Uint8Array; subject?: string }

export const DESIRED_TYPES = ['ContainerRequested', 'ContainerStopRequested', 'ContainerKillRequested',
  'ContainerRemoveRequested', 'ContainerUpdateRequested', 'NetworkCreateRequested', 'NetworkRemoveRequested',
  'ContainerPauseRequested', 'ContainerUnpauseRequested', 'ContainerRenameRequested',
  'VolumeCreateRequested', 'VolumeRemoveRequested', 'ContainerStartRequested'] as const;

/** Entity of a network's events: one subject token, never a 64-hex container id. */
export const networkEntity = (name: string) => `net-${name}`;
export type DesiredType = (typeof DESIRED_TYPES)[number];
export type DesiredEvent = Extract<AnyEvent, { type: DesiredType }>;
