// Subject layout of the EVENTS stream and of the request/reply APIs.
// Ids are validated to [a-z0-9_-] elsewhere, so they are always one subject token.

export const STREAM = 'EVENTS';
/** A node's durable consumer of its desired events (agent/durable.ts): its grants, the agent, the controller and a revocation name it. */
export const durableOf = (node: string): string => `agent-${node}`;
export const IMAGE_BUCKET = 'swarmlite-images';
/** Object store of the log's sealed archive segments (retention: shared/archive.ts) */
export const ARCHIVE_BUCKET = 'swarmlite-archive';
/** How often an agent heartbeats (subjects.heartbeat): well inside the controller's silence (3 s), so one lost beat changes nothing. */
export const HEARTBEAT_MS = 1000;

/**
 * The roots of the subjects only the controller writes (ev.<root>…). The audit's writerOf, a new
 * leader's read of the controller's head (controller/lease.ts) and the servers' grants must all
 * know every one: a root missing from the head read made a restarted controller wait for a head
 * its view had long passed (test/subjects.test.ts holds them together).
 */
export const CONTROLLER_ROOTS = ['desired', 'image', 'cluster', 'controller', 'claim', 'service'] as const;

export const subjects = {
  all: 'ev.>',
  desired: (node: string, ctr: string) => `ev.desired.${node}.${ctr}`,
  desiredFor: (node: string) => `ev.desired.${node}.>`,
  state: (node: string, ctr: string) => `ev.state.${node}.${ctr}`,
  stateFor: (node: string) => `ev.state.${node}.>`,
  /** one container's state events, whichever node runs it */
  stateOf: (ctr: string) => `ev.state.*.${ctr}`,
  node: (node: string) => `ev.node.${node}`,
  image: (hex: string) => `ev.image.${hex}`,
  /** cluster membership decided by the controller (NodeRemoved) */
  cluster: (node: string) => `ev.cluster.${node}`,
  /** a service's desired state (ServiceCreated, ServiceUpdated, ServiceRemoved, ServiceTaskPending) */
  service: (id: string) => `ev.service.${id}`,
  /** a source's key registrations (KeyRegistered); token: controller, node-<id> */
  keys: (token: string) => `ev.keys.${token}`,
  /** a name's claims (Claimed, controller/lease.ts); the name in hex: one token, whatever dots it holds */
  claim: (kind: string, key: string) => `ev.claim.${kind}.${Buffer.from(key, 'utf8').toString('hex')}`,
  /** the controller's own life (ControllerStarted, ControllerLeading) */
  controller: 'ev.controller',
  /** live container output, published by the agent that runs it */
  logs: (node: string, ctr: string) => `logs.${node}.${ctr}`,
  logsOf: (ctr: string) => `logs.*.${ctr}`,
  /**
   * an interactive session's stdin (tsctl exec -i publishes, the node's agent writes it to the
   * process; a message with a `resize` header is a terminal's new size instead). The caller's
   * name is in the subject: the server lets each user publish only under its own name, and
   * the agent listens only under the name the controller authenticated.
   */
  stdin: (node: string, user: string, session: string) => `stdin.${node}.${user}.${session}`,
  /** prefixes of the request/reply verbs (shared/api/) */
  api: 'api',
  agent: (node: string) => `agent.${node}`,
  /** an agent's heartbeat (core NATS, never stored): the controller's membership listens */
  heartbeat: (node: string) => `hb.${node}`,
  heartbeats: 'hb.*',
  /** nats-server's advisory when a consumer of the log has elected a leader (its body names the server): an agent hears its own durable's */
  consumerElected: (consumer: string) => `$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.${STREAM}.${consumer}`,
};

export { TOKEN_RE } from './ids.js';
