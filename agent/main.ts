// swarmlite agent: one per host. Replays its node's desired events into containers and
// appends what really happened. Containers outlive it; on start it re-adopts them.
import { fatalLine } from '../shared/fatal.js';
import './threadpool.js'; // first: libuv reads the pool size when the pool is first used
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAgentStart } from '../shared/restart-policy.js';
import { parseRestart } from '../shared/restart.js';
import type { RestartInfo } from '../shared/events.js';
import { readTextIfAny } from './json-file.js';
import { keepConsumerHome } from './consumer-home.js';
import { openDurable } from './durable.js';
import { hostname, release } from 'node:os';
import { from } from 'rxjs';
import { agentIdentity, connectOptions, credsPath, readCreds, signerOf, longLivedOptions, logConnection, dialLongLived } from '../shared/nats/trust.js';
import { KeyRing, keySubjectToken, SIG_HEADER } from '../shared/signing.js';
import { decodeEvent, SourceChain } from '../shared/codec.js';
import type { NatsConnection } from 'nats';
import { objectInfo, readObject } from '../shared/nats/object-get.js';
import { layerForm } from '../shared/layer-object.js';
import { layerWaitMs, objectWhenThere } from '../shared/nats/object-wait.js';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream';
import { waitStream, Appender, chainHeadFromStream, exitForRestart, lastOn, withRetry, jetstreamReady, TRANSIENT } from '../shared/nats/log.js';
import { readAnchor } from '../shared/nats/anchor.js';
import { readersFor } from '../shared/nats/readers.js';
import { TrustMirror } from '../shared/nats/trust-dist.js';
import { mirrorMarker, NODE_RE } from '../shared/nats/trust.js';
import { durableOf, STREAM, IMAGE_BUCKET, HEARTBEAT_MS, subjects } from '../shared/subjects.js';
import { newId } from '../shared/codec.js';
import { nodeLayout } from './layout.js';
import { Checkpoint } from './pipeline/checkpoint.js';
import { Reconciler } from './pipeline/reconciler.js';
import { recoverPromised } from './pipeline/recover.js';
import { ContainerHost } from './host/container-host.js';
import { rootfsStorage } from './storage/rootfs.js';
import { STORAGE_DRIVERS, type StorageDriver } from './storage/snapshotter.js';
import { NodeVolumes } from './storage/volumes.js';
import { dropAnonymous } from './pipeline/actions.js';
import { volumeEntity, volumesOf } from '../shared/volumes.js';
import { openNodeNetwork } from './network/node-network.js';
import { nodeCgroups } from './cgroups/node-cgroups.js';
import { Runtime } from './runtime/runtime.js';
import { LogStreamer } from './logs.js';
import { serveAgentApi } from './api.js';
import { Archives } from './archive.js';
import { CopiesIn, Holds } from './copy.js';
import { isMounted } from './storage/mounts.js';
import { lgetxattr } from '../native/libc.js';
import { Execs } from './exec.js';
import { HealthChecks } from './health.js';
import { ContainerInputs } from './attach.js';
import { nodeFeatures, nodeResources } from './node-info.js';
import { enableFavorDynmods } from './cgroups/dynmods.js';
import { allocated } from './cgroups/index.js';

const VERSION = '0.1.0';
/** How long a container's start waits for a layer a pull is still putting into the object store. */
const LAYER_WAIT_MS = layerWaitMs();
const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.SWARMLITE_NATS ?? 'nats://127.0.0.1:4222' },
    'state-dir': { type: 'string', default: '/var/lib/swarmlite' },
    node: { type: 'string', default: hostname().toLowerCase().replace(/[^a-z0-9_-]/g, '-') },
    subnet: { type: 'string' },
    creds: { type: 'string' },
    // overlay (default) or vfs (plain copies, where the kernel has no overlayfs): agent/storage/snapshotter.ts
    'storage-driver': { type: 'string', default: process.env.SWARMLITE_STORAGE_DRIVER ?? 'overlay' },
  },
});

async function main(): Promise<void> {
  const node = values.node!;
  if (!NODE_RE.test(node)) throw new Error(`invalid --node "${node}": a lower-case letter or digit, then letters, digits, _ and - (at most 27)`);
  const driver = values['storage-driver'] as StorageDriver;
  if (!STORAGE_DRIVERS.includes(driver)) throw new Error(`invalid --storage-driver "${driver}": ${STORAGE_DRIVERS.join(' or ')}`);
  const layout = nodeLayout(values['state-dir']!, node);
  mkdirSync(layout.root, { recursive: true });
  // the node's own nkey identity (ops/up made it): the server lets it write only this node's subjects
  const creds = readCreds(values.creds ?? credsPath(values['state-dir']!, agentIdentity(node)));
  // a dial to a dead or cut-off server is given up within 2 s (nats.js waits 20 s): the agent
  // is back on another server of the cluster before its node is declared down
  const nc = await dialLongLived({ ...longLivedOptions(creds, values.nats), name: `swarmlite-agent-${node}` }, 'agent');
  // alive from the moment it is connected (core NATS, not the log): the controller's membership
  // marks the node down after a silence, so a restart's own set-up does not count as one
  const beat = setInterval(() => { try { nc.publish(subjects.heartbeat(node)); } catch { /* reconnecting: the next beat */ } }, HEARTBEAT_MS);
  nc.publish(subjects.heartbeat(node));
  logConnection(nc, 'agent');
  // its reads of the log go through consumers its grants name (shared/nats/readers.ts)
  readersFor(nc, creds);
  // stdout, the log: stderr is for what stops the agent, one line (checkpoint-kill checks it)
  console.log(`agent: ${new Date().toISOString()} connected to ${nc.info?.server_name ?? '?'}`);
  const jsm = await jetstreamReady(nc);
  // a server host without the controller: its nats-server's grants follow the controller's
  // signed identities (a user added or revoked there, a node that joined there)
  let mirror: TrustMirror | undefined;
  if (existsSync(mirrorMarker(values['state-dir']!))) {
    mirror = new TrustMirror({ nc, state: values['state-dir']!, root: creds.root });
    mirror.start();
  }
  await waitStream(jsm);
  // the image store too: the controller makes it, an agent may only read it
  await waitStream(jsm, `OBJ_${IMAGE_BUCKET}`);
  const js = nc.jetstream();

  // the start-up reads wait out an election of the log's stream (the leading controller moves
  // its raft leader off its own host, controller/lease.ts): 4-9 s with no responders
  const electing = <T>(f: () => Promise<T>) => withRetry(f, 15);
  let chain = await electing(() => chainHeadFromStream(jsm, nc, `node:${node}`, [subjects.stateFor(node), subjects.node(node)]));
  // none of its events left in the stream (archived, shared/nats/archive.ts): the anchor has its head
  if (chain.position.srcSeq === 0) {
    const a = await readAnchor(nc, creds.root);
    const h = typeof a === 'object' ? a.heads[`node:${node}`] : undefined;
    if (h) chain = new SourceChain(`node:${node}`, h.srcSeq, h.hash);
  }
  const { signer, reg } = signerOf(creds);
  const log = new Appender(js, chain, signer, { nc, onStop: exitForRestart('agent') });
  // this node's key, bound to it by the root, before any event it signs
  const mine = await electing(() => lastKey(nc, `node:${node}`, new KeyRing(creds.root)));
  if (mine !== reg.key) await log.append(subjects.keys(keySubjectToken(`node:${node}`)), 'KeyRegistered', node, { key: reg.key, rootSig: reg.rootSig });
  // desired events must be signed by the controller's registered key; it registers before it serves
  const ring = new KeyRing(creds.root);
  for (let k = 0; !(await electing(() => lastKey(nc, 'controller', ring))); k++) {
    if (k === 600) throw new Error('the controller registered no signing key within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const dynmods = enableFavorDynmods();
  const checkpoint = await Checkpoint.open(layout.checkpoint, { legacy: layout.checkpointLegacy });
  const recovered = await recoverPromised(nc, log, checkpoint, node);
  if (recovered) console.log(`agent: appended ${recovered} event(s) a crash had left unreported`);
  const network = await openNodeNetwork(node, layout, values.subnet);
  const cgroups = nodeCgroups(node);
  const storage = rootfsStorage(layout, async (digest) => {
    // direct gets, which any replica answers: a cluster electing the store's leader (a server
    // host cut) does not hold the read up (shared/nats/object-get.ts); retried while no server
    // answers. A layer a pull is still putting (it answered first) is waited for (object-wait.ts)
    const info = await objectWhenThere(() => withRetry(() => objectInfo(nc, IMAGE_BUCKET, digest.replace(':', '-'))), LAYER_WAIT_MS);
    if (!info) throw new Error(`image layer ${digest} is not in the cluster's store (waited ${LAYER_WAIT_MS / 1000} s; a pull stopped before its upload finished: pull the image again)`);
    // the layer store hashes the tar against `digest` (the diff_id): not twice. A pulled layer
    // may be kept as the registry's gzip blob (shared/layer-object.ts): that hash is then the
    // only check of its diff_id, and a mismatch or bad gzip is refused with nothing kept
    const form = layerForm(info, digest);
    if (typeof form === 'string') throw new Error(`image layer ${digest} in the cluster's store: ${form}`);
    const bytes = readObject(nc, IMAGE_BUCKET, info, { verify: false });
    if (form.encoding === 'plain') return bytes;
    const gz = createGunzip({ chunkSize: 256 << 10 });
    gz.once('error', (e: Error & { code?: string }) => { if (e.code?.startsWith('Z_')) e.message = `its blob ${form.blob} is not valid gzip: ${e.message}`; });
    pipeline(bytes, gz, () => undefined);
    return gz;
  }, driver);
  const volumes = new NodeVolumes(layout.volumes, (name) => checkpoint.all()
    .filter(([, r]) => r.reported !== 'removed' && volumesOf(r.spec?.mounts).includes(name)).map(([id]) => id));
  await volumes.sweep();
  const host = new ContainerHost(layout, { storage, network, cgroups, runtime: new Runtime(layout.runtime) });
  const logs = new LogStreamer(nc, node, (id) => host.logPath(id));
  const rec = new Reconciler({
    node, log, checkpoint, logs, host, networks: network, volumes, signed: (e, bytes, sig) => ring.check(e, bytes, sig),
    ackFloor: async () => (await jsm.consumers.info(STREAM, durableOf(node))).ack_floor.stream_seq,
    firstSeq: async () => (await jsm.streams.info(STREAM)).state.first_seq,
  });

  const execs = new Execs(nc, node, host, log);
  // run -i / -it and attach: stdin and resizes of containers' own processes, from their owners
  const inputs = new ContainerInputs(nc, node, (id) => {
    const r = checkpoint.get(id);
    if (!r?.spec || r.reported !== 'running') return undefined;
    return { ...(r.owner ? { owner: r.owner } : {}), interactive: r.spec.interactive === true, tty: r.spec.tty !== undefined, fifo: host.attachPath(id) };
  });
  inputs.start();
  const mountedRoot = (id: string) => (isMounted(layout.rootfs(id)) ? layout.rootfs(id) : undefined);
  // tsctl cp freezes a container while it walks its tree; a crash mid-copy left it frozen
  const holds = new Holds(join(layout.root, 'copy-holds'), cgroups);
  for (const id of await holds.recover()) console.log(`agent: thawed ${id.slice(0, 12)}, frozen by a copy the agent did not finish`);
  const copies = new CopiesIn(join(layout.root, 'copies'), { node, rootfs: mountedRoot, holds, log });
  const archives = new Archives(join(layout.root, 'archives'), {
    rootfs: mountedRoot, holds,
    upper: (id) => storage.snapshots.changes(id),
    opaque: (path) => lgetxattr(path, 'trusted.overlay.opaque')?.toString() === 'y',
    capability: (path) => lgetxattr(path, 'security.capability'),
  });
  const count = (dir: string) => { try { return readdirSync(dir).length; } catch { return 0; } };
  const kernel = release();
  const describe = () => ({
    kernel,
    // overlay with fsconfig's lowerdir+ (kernel 6.8+) stacks more layers than one mount's options hold
    storage: { driver, root: layout.root, layers: count(layout.layers), containers: count(layout.snapshots), volumes: count(layout.volumes), deepStacks: driver === 'overlay' && kernelAtLeast(kernel, 6, 8) },
  });
  serveAgentApi(nc, { node, logs, host, network, cgroups, checkpoint, execs, archives, copies, describe, changes: (id) => storage.snapshots.changes(id) });
  const live = await adopt(host, checkpoint, logs, rec, log, node, volumes);
  const execsAdopted = execs.adopt(live);
  if (execsAdopted) console.log(`agent: adopted ${execsAdopted} exec(s) that ran while it was away`);
  // links, rules, addresses and groups of containers that are gone; nothing duplicated
  const report = await network.reconcile(live);
  const leaked = report.endpoints.length + report.links.length + report.sandboxes.length + report.addresses.length;
  if (leaked) console.log(`agent: reconciled network: ${JSON.stringify(report)}`);
  await cgroups.prune([...live]);

  // a consumer another made under its name before it joined is not its durable (agent/durable.ts)
  if (await openDurable(jsm, node, signer) === 'replaced') console.error(`agent: ${durableOf(node)} was not this node's durable: made again from the log's start`);
  const consumer = await js.consumers.get(STREAM, durableOf(node));
  // pulls that expire in 4 s: a pull left on a server that died (the consumer's leader moved)
  // is noticed by missed heartbeats within ~4 s, not nats.js's default 30
  const messages = await consumer.consume({ max_messages: 256, expires: 4000 });
  rec.start(from(messages));
  // its raft leader on this host's server, so another host's cut does not stall it (agent/consumer-home.ts)
  const home = keepConsumerHome(nc, jsm, durableOf(node), { log: (l) => console.error(`agent: ${l}`) });

  const res = nodeResources();
  // what the containers this node still has (running or stopped, not removed) claim of it
  const claimed = allocated(checkpoint.all().filter(([, r]) => r.reported !== 'removed').map(([, r]) => r.spec?.resources));
  // the storage driver is a feature of the node (NodeJoined): what its containers' roots are made with
  const features = [...nodeFeatures(), ...(dynmods ? ['cgroup-favordynmods'] : []), `storage-driver=${driver}`];
  const restart = restartOf(join(values['state-dir']!, 'run', 'agent.restarts'));
  // after NodeJoined's set-up, off the start path: probes of running containers go on from their records
  const health = new HealthChecks({ node, host, checkpoint, log, pids: (id) => cgroups.pids(id), frozen: (id) => cgroups.frozen(id) });
  await log.append(subjects.node(node), 'NodeJoined', node, { ...res, allocated: claimed, features, version: VERSION, ...(restart ? { restart } : {}) });
  console.log(`agent ${node} joined (${values.nats}), state ${layout.root}`);
  health.start();

  const stop = async () => {
    clearInterval(beat);
    home();
    mirror?.stop();
    rec.stop();
    checkpoint.flush();
    logs.stop();
    execs.stop();
    health.stop();
    inputs.stop();
    await messages.close().catch(() => undefined);
    network.close();
    await nc.drain().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** Re-adopts containers that kept running while the agent was away, reports the ones
 *  that exited meanwhile, and removes leftovers of containers the log no longer has. */
async function adopt(host: ContainerHost, cp: Checkpoint, logs: LogStreamer, rec: Reconciler, log: Appender, node: string, volumes: NodeVolumes): Promise<Set<string>> {
  const live = new Set<string>();
  for (const [id, r] of cp.all()) {
    if (r.reported === 'removed') continue;
    if (r.reported !== 'running' && r.spec?.autoRemove) {
      // --rm whose removal a crash interrupted (the exit or failure was reported)
      await host.remove(id).catch((err) => console.error(`agent: auto-remove ${id.slice(0, 12)}: ${(err as Error).message}`));
      // its anonymous volumes go with it (before the record says removed: a crash here redoes both)
      const gone = await dropAnonymous(volumes, id, r.spec?.mounts);
      const e = { type: 'ContainerRemoved' as const, entity: id, data: { reason: 'auto-remove on exit' }, cause: r.requestId, id: newId() };
      cp.update(id, { reported: 'removed' }, [e]);
      await log.append(subjects.state(node, id), e.type, id, e.data, e.cause, e.id);
      for (const name of gone) await log.append(subjects.state(node, volumeEntity(name)), 'VolumeRemoved', volumeEntity(name), { name }, r.requestId, newId());
      cp.kept(id);
      continue;
    }
    live.add(id);
    if (r.reported === 'exited') {
      // a restart policy carries on where the last agent left it (its back-off's end is in the record)
      const at = afterAgentStart(r.spec?.restartPolicy, r.stopped === true, r.restartAt, Date.now());
      if (at !== undefined) {
        if (r.stopped || r.restartAt !== at) cp.update(id, { stopped: false, restartAt: at });
        rec.scheduleRestart(id, at);
      }
    }
    if (r.reported !== 'running') continue;
    const st = host.status(id);
    if (st.state === 'running') {
      logs.follow(id, logs.size(id));
      rec.watch(id);
    } else if (st.state === 'exited' && st.exit) {
      logs.follow(id, logs.size(id));
      rec.reportExit(id, st.exit);
    } else {
      const e = { type: 'ContainerFailed' as const, entity: id, data: { error: 'container state was lost while the agent was away', exitCode: 125 }, cause: r.requestId, id: newId() };
      cp.update(id, { reported: 'failed' }, [e]);
      await log.append(subjects.state(node, id), e.type, id, e.data, e.cause, e.id);
      cp.kept(id);
    }
  }
  for (const id of host.known()) {
    if (!live.has(id)) await host.remove(id).catch((err) => console.error(`agent: cleanup ${id.slice(0, 12)}: ${(err as Error).message}`));
  }
  return live;
}

/** A source's latest root-signed key registration in the log (learnt into `ring`), if any. */
async function lastKey(nc: NatsConnection, src: string, ring: KeyRing): Promise<string | undefined> {
  let m;
  // a read that could not be made is retried (the caller's `electing`), not taken for "no key"
  try { m = await lastOn(nc, subjects.keys(keySubjectToken(src))); } catch (err) { if (TRANSIENT.test((err as Error).message)) throw err; return undefined; }
  if (!m) return undefined;
  try {
    const e = decodeEvent(m.data);
    if (e.type !== 'KeyRegistered' || e.src !== src || ring.check(e, m.data, m.sig)) return undefined;
    return e.data.key;
  } catch { return undefined; }
}

/** Why the supervisor started this agent again, if it did (ops/supervise writes it). */
function restartOf(file: string): RestartInfo | undefined {
  try { return parseRestart(readTextIfAny(file)); } catch (err) {
    console.error(`agent: ignoring ${file}: ${(err as Error).message}`);
    return undefined;
  }
}

main().catch((err) => {
  console.error(fatalLine('agent', err));
  process.exit(1);
});

/** Whether a release string like 6.18.0-1-amd64 is at least major.minor. */
function kernelAtLeast(r: string, major: number, minor: number): boolean {
  const [a, b] = r.split('.').map((x) => parseInt(x, 10));
  return a! > major || (a === major && b! >= minor);
}
