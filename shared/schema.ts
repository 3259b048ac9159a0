// Payload checks per event type. Kept next to events.ts's types; a type added there
// without a check here fails to compile (the record is exhaustive).
import { arr, bool, int, num, obj, oneOf, opt, str, ValidationError, type Check } from './validate.js';
import type { EventData, EventType } from './events.js';
import { mountCheck, MAX_MOUNTS, VOLUME_NAME_RE } from './volumes.js';
import { MAX_CONSTRAINTS } from './constraints.js';
import { MAX_PLACEMENT_PREFS, PLACEMENT_PREF_RE } from './placement-prefs.js';
import { hostConfigProblem, hostConfigShape, refine } from './host-config.js';
import { MAX_RETRIES, RESTART_POLICIES, type RestartPolicy } from './restart-policy.js';
import { healthcheckCheck, HEALTH_LOG_KEEP, HEALTH_OUTPUT_MAX } from './health.js';
import { DIGEST_RE, HOSTNAME_RE, IMAGE_NAME_RE, NAME_RE, NETWORK_RE, TOKEN_RE } from './ids.js';
const CIDR_RE = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$/;
const SIGNAL_RE = /^(SIG)?[A-Z0-9+-]{1,12}$|^[0-9]{1,2}$/;
const MAX_U64 = Number.MAX_SAFE_INTEGER;
const EXEC_ID_RE = /^[0-9a-f]{64}$/;
/** overlayfs stacks at most 500 lower layers. */
export const MAX_LAYERS = 500;

export const user = str(256);
export const limits = obj({
  cpus: opt(num(0, 1024)),
  cpuShares: opt(int(2, 262144)),
  cpusetCpus: opt(str(64, /^[0-9,-]+$/)),
  memory: opt(int(-1, MAX_U64)),
  memorySwap: opt(int(-1, MAX_U64)),
  pidsLimit: opt(int(-1, 4194304)),
  blkioWeight: opt(int(10, 1000)),
});
/** A request's port: host 0 is "any free one", which the controller picks after placement. */
export const port = obj({ host: int(0, 65535), container: int(1, 65535), proto: oneOf('tcp', 'udp'), hostIp: opt(str(64)) });
/** A placed container's port: the desired event names the real host port, never 0. */
const placedPort = obj({ host: int(1, 65535), container: int(1, 65535), proto: oneOf('tcp', 'udp'), hostIp: opt(str(64)) });
/** The spec's confinement options (shared/security.ts): sizes and names bounded. */
export const security = obj({
  devices: opt(arr(str(4096), 64)),
  seccomp: opt(str(512 * 1024)),
  noNewPrivileges: opt(bool),
  ulimits: opt(arr(obj({ type: str(32, /^RLIMIT_[A-Z]+$/), soft: int(0, MAX_U64), hard: int(0, MAX_U64) }), 16)),
  capAdd: opt(arr(str(36, /^(ALL|CAP_[A-Z_]+)$/), 64)),
  capDrop: opt(arr(str(36, /^(ALL|CAP_[A-Z_]+)$/), 64)),
  oomScoreAdj: opt(int(-1000, 1000)),
});

/** user[:group], names or numbers, as exec's (agent/runtime/exec-launch.ts). */
export const USER_SPEC_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63})?$/;
export const GROUP_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;

/** A namespace another's: the host's, or a container's by id (the controller resolves names). */
export const NS_MODE_RE = /^(host|container:[0-9a-f]{64})$/;
/** A service's id: 24 hex digits (a container's is 64). */
export const SERVICE_ID_RE = /^[0-9a-f]{24}$/;
/** A service's name: one subject-safe word, no dots (a task is <name>.<slot>.<n>), no slashes. */
export const SERVICE_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;
/** The most replicas a service may ask for (each is a container on some node). */
export const MAX_REPLICAS = 10_000;
const slot = str(64, TOKEN_RE);
const taskOf = obj({ id: str(24, SERVICE_ID_RE), name: str(63, SERVICE_NAME_RE), slot, task: int(1, MAX_U64), attempt: int(0, 1e9), version: opt(int(0, MAX_U64)) });
/** Rolling update settings (shared/events.ts UpdateConfig): bounded so a plan's arithmetic stays sane. */
export const updateConfig = obj({
  parallelism: int(0, MAX_REPLICAS), delayMs: int(0, 86_400_000), order: oneOf('stop-first', 'start-first'), monitorMs: int(0, 86_400_000),
  failureAction: oneOf('pause', 'continue', 'rollback'), maxFailureRatio: num(0, 1),
});
export const taskTemplate = obj({
  image: str(256), args: opt(arr(str(65536), 4096)), env: opt(arr(str(65536, /^[^=]+=/s), 4096)), workdir: opt(str(4096, /^\//)),
  network: opt(str(200)), entrypoint: opt(str(65536)), resources: opt(limits), ports: opt(arr(port, 256)),
  mounts: opt(arr(mountCheck, MAX_MOUNTS)),
});
const serviceSpec = obj({
  name: str(63, SERVICE_NAME_RE), mode: oneOf('replicated', 'global'), replicas: int(0, MAX_REPLICAS), task: taskTemplate,
  constraints: opt(arr(str(512), MAX_CONSTRAINTS)),
  placementPrefs: opt(arr(str(160, PLACEMENT_PREF_RE), MAX_PLACEMENT_PREFS)),
  restart: obj({ condition: oneOf('none', 'on-failure', 'any'), maxAttempts: int(0, 1e6), delayMs: int(0, 86_400_000) }),
  update: opt(updateConfig), rollback: opt(updateConfig), stopGraceS: opt(int(0, 86400)),
});

/** --restart as the spec keeps it (shared/restart-policy.ts); a count only with on-failure. */
export const restartPolicy: Check<RestartPolicy> = (v, f) => {
  const p = obj({ name: oneOf(...RESTART_POLICIES), maxRetries: opt(int(1, MAX_RETRIES)) })(v, f) as RestartPolicy;
  if (p.maxRetries !== undefined && p.name !== 'on-failure') throw new ValidationError(`${f}.maxRetries`, `a retry count is for on-failure only, not ${p.name}`);
  return p;
};

const specFields = obj({
  name: str(128, NAME_RE),
  image: str(256),
  imageDigest: str(71, DIGEST_RE),
  layers: opt(arr(str(71, DIGEST_RE), MAX_LAYERS)),
  args: arr(str(65536), 4096),
  env: arr(str(65536, /^[^=]+=/s), 4096),
  hostname: str(63, HOSTNAME_RE),
  workdir: str(4096, /^\//),
  network: str(200),
  autoRemove: bool,
  resources: opt(limits),
  ports: opt(arr(placedPort, 256)),
  security: opt(security),
  mounts: opt(arr(mountCheck, MAX_MOUNTS)),
  pidMode: opt(str(74, NS_MODE_RE)),
  ipcMode: opt(str(74, NS_MODE_RE)),
  utsMode: opt(str(4, /^host$/)),
  processUser: opt(str(129, USER_SPEC_RE)),
  groupAdd: opt(arr(str(64, GROUP_RE), 32)),
  readOnly: opt(bool),
  init: opt(bool),
  labels: opt(containerLabels),
  tty: opt(obj({ rows: int(0, 4096), cols: int(0, 4096) })),
  interactive: opt(bool),
  constraints: opt(arr(str(512), MAX_CONSTRAINTS)),
  ...hostConfigShape,
  service: opt(taskOf),
  restartPolicy: opt(restartPolicy),
  stopSignal: opt(str(16, SIGNAL_RE)),
  stopTimeout: opt(int(0, 86400)),
  healthcheck: opt(healthcheckCheck),
});
/** Each field, then what they need of each other (shared/host-config.ts): a net.* sysctl with the host's network, ... */
const spec = refine(specFields, hostConfigProblem);

/** Node labels: docker's key shape (letters, digits, . _ - /), short values, at most 64. */
export const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const labelMap: Check<Record<string, string>> = (v, f) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(f, 'expected an object of labels');
  const keys = Object.keys(v);
  if (keys.length > 64) throw new ValidationError(f, 'more than 64 labels');
  const out: Record<string, string> = {};
  for (const k of keys) out[str(128, LABEL_KEY_RE)(k, f ? `${f} key` : 'key')] = str(256)((v as Record<string, unknown>)[k], f ? `${f}.${k}` : k);
  return out;
};

/** A container's labels (its image's and --label): values as long as docker's common use, at most 128. */
export const CONTAINER_LABELS_MAX = 128;
export const CONTAINER_LABEL_VALUE_MAX = 4096;
export function containerLabels(v: unknown, f: string): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(f, 'expected an object of labels');
  const keys = Object.keys(v);
  if (keys.length > CONTAINER_LABELS_MAX) throw new ValidationError(f, `more than ${CONTAINER_LABELS_MAX} labels`);
  const out: Record<string, string> = {};
  for (const k of keys) out[str(128, LABEL_KEY_RE)(k, f ? `${f} key` : 'key')] = str(CONTAINER_LABEL_VALUE_MAX)((v as Record<string, unknown>)[k], f ? `${f}.${k}` : k);
  return out;
}

const restart = opt(obj({ count: int(1, 1e9), status: int(0, 511), exit: str(200), upMs: int(0, MAX_U64), exitedAt: str(40), by: str(16) }));

export const payloadChecks: { [K in EventType]: Check<EventData[K]> } = {
  ContainerRequested: obj({ node: str(64, TOKEN_RE), spec, user, create: opt(bool) }) as Check<EventData['ContainerRequested']>,
  ContainerStartRequested: obj({ user }),
  ContainerCreated: obj({ ip: opt(str(64)) }),
  ContainerStopRequested: obj({ timeout: int(0, 86400), user }),
  ContainerKillRequested: obj({ signal: str(16, SIGNAL_RE), user }),
  ContainerRemoveRequested: obj({ force: bool, volumes: opt(bool), user }),
  ContainerUpdateRequested: obj({ resources: limits, user }) as Check<EventData['ContainerUpdateRequested']>,
  NetworkCreateRequested: obj({ node: str(64, TOKEN_RE), name: str(32, NETWORK_RE), subnet: str(18, CIDR_RE), gateway: opt(str(15, IP_RE)), user }),
  NetworkRemoveRequested: obj({ node: str(64, TOKEN_RE), name: str(32, NETWORK_RE), user }),
  VolumeCreateRequested: obj({ node: str(64, TOKEN_RE), name: str(128, VOLUME_NAME_RE), labels: opt(labelMap), anonymous: opt(bool), user }),
  VolumeRemoveRequested: obj({ node: str(64, TOKEN_RE), name: str(128, VOLUME_NAME_RE), user }),
  VolumeCreated: obj({ name: str(128, VOLUME_NAME_RE), mountpoint: str(4096) }),
  VolumeRemoved: obj({ name: str(128, VOLUME_NAME_RE) }),
  NetworkCreated: obj({ name: str(32, NETWORK_RE), subnet: str(18, CIDR_RE), gateway: str(15, IP_RE), bridge: str(15) }),
  NetworkRemoved: obj({ name: str(32, NETWORK_RE) }),
  ImageImported: obj({ name: str(256, IMAGE_NAME_RE), digest: str(71, DIGEST_RE), size: int(0, MAX_U64), user, layers: opt(arr(str(71, DIGEST_RE), MAX_LAYERS)), source: opt(str(512)) }),
  ImageRemoved: obj({ name: str(256, IMAGE_NAME_RE), digest: str(71, DIGEST_RE), user }),
  ContainerStarted: obj({ pid: int(1, 4194304), receivedAt: num(0, 1e14), runningAt: num(0, 1e14), ip: opt(str(64)), restartCount: opt(int(1, 1e9)) }),
  ContainerExited: obj({ exitCode: int(-1, 255), signal: opt(str(16)), oomKilled: bool, exitedAt: num(0, 1e14), whileAway: opt(bool), restartInMs: opt(int(0, 86_400_000)) }),
  ContainerFailed: obj({ error: str(4096), exitCode: int(0, 255) }),
  ContainerRemoved: obj({ reason: str(256) }),
  ContainerHealthChanged: obj({
    status: oneOf('starting', 'healthy', 'unhealthy'), failingStreak: int(0, 1e9), runningAt: num(0, 1e14),
    // output bounded in characters: 4 KiB of bytes is at most 4 Ki characters
    log: arr(obj({ start: num(0, 1e14), end: num(0, 1e14), exitCode: int(-1, 255), output: str(HEALTH_OUTPUT_MAX) }), HEALTH_LOG_KEEP),
  }),
  ContainerUpdated: obj({ resources: limits }) as Check<EventData['ContainerUpdated']>,
  EventRejected: obj({ reason: str(4096), rejectedSeq: int(0, MAX_U64), rejectedId: opt(str(64)), rejectedType: opt(str(64)), gone: opt(bool) }),
  NodeRemoved: obj({ force: bool, user }),
  ContainerPauseRequested: obj({ user }),
  ContainerUnpauseRequested: obj({ user }),
  ContainerRenameRequested: obj({ name: str(128, NAME_RE), user }),
  ContainerPaused: obj({}) as Check<EventData['ContainerPaused']>,
  ContainerUnpaused: obj({}) as Check<EventData['ContainerUnpaused']>,
  ExecStarted: obj({ execId: str(64, EXEC_ID_RE), user, args: arr(str(65536), 4096), workdir: opt(str(4096)), processUser: opt(str(129)), interactive: opt(bool), pid: int(1, 4194304) }),
  ExecExited: obj({ execId: str(64, EXEC_ID_RE), exitCode: int(-1, 255), signal: opt(str(16)), exitedAt: num(0, 1e14) }),
  ExecFailed: obj({ execId: str(64, EXEC_ID_RE), user, args: arr(str(65536), 4096), error: str(4096), exitCode: int(0, 255) }),
  ContainerFilesCopied: obj({ user, dest: str(4096), entries: int(0, 1e9), bytes: int(0, Number.MAX_SAFE_INTEGER), digest: str(71) }),
  NodeDown: obj({ silenceMs: int(0, 86_400_000), lastSeen: opt(num(0, 1e14)) }),
  NodeReady: obj({ downMs: opt(num(0, 1e14)) }),
  NodeUpdated: obj({ availability: opt(oneOf('active', 'pause', 'drain')), labelAdd: opt(labelMap), labelRm: opt(arr(str(128, LABEL_KEY_RE), 64)), user }),
  ControllerStarted: obj({ version: str(64), restart }),
  ControllerLeading: obj({ host: str(64, TOKEN_RE), term: int(1, MAX_U64), ttlMs: int(100, 3_600_000) }),
  Claimed: obj({ kind: oneOf('container', 'network', 'service'), key: str(128, NAME_RE) }),
  ServiceCreated: obj({ spec: serviceSpec, user }) as Check<EventData['ServiceCreated']>,
  ServiceUpdated: obj({ replicas: int(0, MAX_REPLICAS), user }),
  ServiceRemoved: obj({ user }),
  ServiceTaskPending: obj({ slot, reason: str(1024) }),
  ServiceUpdateStarted: obj({ spec: serviceSpec, policy: updateConfig, user, rollback: opt(bool), reason: opt(str(1024)), force: opt(bool) }) as Check<EventData['ServiceUpdateStarted']>,
  ServiceUpdatePaused: obj({ reason: str(1024) }),
  ServiceUpdateCompleted: obj({}) as Check<EventData['ServiceUpdateCompleted']>,
  KeyRegistered: obj({ key: str(64, /^[0-9a-f]{64}$/), rootSig: str(100) }),
  NodeJoined: obj({
    hostname: str(256), cpus: int(1, 4096), memory: int(0, MAX_U64), kernel: str(256),
    features: arr(str(64), 64), version: str(64),
    allocated: opt(obj({ cpus: num(0, 4096), memory: int(0, MAX_U64) })),
    restart,
  }),
};
