// swarmlite controller: serves tsctl, appends desired events, keeps the folded view.
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { parseRestart } from '../shared/restart.js';
import { subjects } from '../shared/subjects.js';
import { join } from 'node:path';
import { connect, StorageType } from 'nats';
import { addIdentity, agentIdentity, CONTROLLER_READER, connectOptions, credsPath, identities, readCreds, reloadServer, removeIdentity, signerOf } from '../shared/nats/trust.js';
import { conflict } from '../shared/rpc.js';
import { ensureStream, Appender, DEFAULT_LIMITS } from '../shared/nats/log.js';
import { SourceChain } from '../shared/codec.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { TRAVEL_EVERY, ViewKeeper, type SnapshotInfo } from './view.js';
import { writeAnchor } from '../shared/nats/anchor.js';
import { listSnapshots, putSnapshot } from '../shared/nats/snapshots.js';
import { serveApi } from './api/index.js';

const VERSION = '0.1.0';
const ANCHOR_EVERY_MS = 2000;

const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.SWARMLITE_NATS ?? 'nats://127.0.0.1:4222' },
    'state-dir': { type: 'string', default: '/var/lib/swarmlite' },
    'log-max-bytes': { type: 'string' },
    creds: { type: 'string' },
    // a full snapshot at least every N events, also stored for view --at (tests set it low)
    'snapshot-every': { type: 'string', default: process.env.SWARMLITE_SNAPSHOT_EVERY ?? String(TRAVEL_EVERY) },
  },
});

async function main(): Promise<void> {
  const dir = join(values['state-dir']!, 'controller');
  const restartsFile = join(values['state-dir']!, 'run', 'controller.restarts');
  mkdirSync(dir, { recursive: true });
  const creds = readCreds(values.creds ?? credsPath(values['state-dir']!, 'controller'));
  const nc = await connect({ ...connectOptions(creds, values.nats), name: 'swarmlite-controller', maxReconnectAttempts: -1 });
  const jsm = await nc.jetstreamManager();
  const maxBytes = values['log-max-bytes'] === undefined ? DEFAULT_LIMITS.maxBytes : Number(values['log-max-bytes']);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1024 * 1024) throw new Error(`invalid --log-max-bytes "${values['log-max-bytes']}": a number of bytes, at least 1048576`);
  const inForce = await ensureStream(jsm, { ...DEFAULT_LIMITS, maxBytes });
  if (inForce !== maxBytes) console.log(`controller: the server has room for ${inForce} bytes of log, not ${maxBytes}: the oldest events go past that`);
  const js = nc.jetstream();
  const images = await js.views.os(IMAGE_BUCKET, { storage: StorageType.File });
  const { signer, reg } = signerOf(creds);
  const used = new Set<string>();
  const every = Number(values['snapshot-every']);
  if (!Number.isSafeInteger(every) || every < 1) throw new Error(`invalid --snapshot-every "${values['snapshot-every']}": a number of events, 1 or more`);
  const keeper = await ViewKeeper.open(dir, creds.root, every);
  // every full snapshot goes to the object store too, signed, for view --at: one upload at a time,
  // and while one runs only the newest snapshot waits (a catch-up makes them faster than they upload)
  let uploading = false;
  let waiting: SnapshotInfo | undefined;
  // a window of the log that has a stored snapshot needs no other (a replay over a log snapshotted before)
  const stored = new Set((await listSnapshots(nc).catch(() => [])).map((x) => x.seq));
  const upload = (s: SnapshotInfo): void => {
    if (uploading) { waiting = s; return; }
    uploading = true;
    putSnapshot(nc, s, signer, reg).then(() => { stored.add(s.seq); }).catch((err) => console.error(`controller: storing snapshot #${s.seq}: ${(err as Error).message}`))
      .finally(() => { uploading = false; const w = waiting; waiting = undefined; if (w) upload(w); });
  };
  keeper.covered = (from, to) => { for (const q of stored) if (q > from && q <= to) return true; return false; };
  keeper.onSnapshot = (s) => {
    if (!keeper.covered!(s.seq - every, s.seq)) upload(s);
  };
  // the log is read through the controller's viewer identity (CONTROLLER_READER says why), where there is one
  const readerFile = credsPath(values['state-dir']!, CONTROLLER_READER);
  const reader = existsSync(readerFile)
    ? await connect({ ...connectOptions(readCreds(readerFile), values.nats), name: 'swarmlite-controller-reader', maxReconnectAttempts: -1 })
    : nc;
  await keeper.start(reader);
  // the chain head comes from the fold: every controller event is in the view's sources
  const head = keeper.view.sources.controller;
  const log = new Appender(js, new SourceChain('controller', head?.srcSeq ?? 0, head?.hash ?? ''), signer);
  // before any other event signed with it: the root-signed binding of this key to 'controller'
  if (keeper.view.keys?.controller !== reg.key) await log.append(subjects.keys('controller'), 'KeyRegistered', 'controller', { key: reg.key, rootSig: reg.rootSig });
  serveApi(nc, {
    view: () => keeper.view,
    append: (subject, type, entity, data) => log.append(subject, type, entity, data),
    waitFor: (seq) => keeper.waitFor(seq),
    until: (cond, ms) => keeper.until(cond, ms),
    images: { info: (k) => images.info(k), delete: (k) => images.delete(k) },
    join: async (caller, node) => {
      const state = values['state-dir']!;
      // one use: the token's identity goes. The server reloads after the reply has left: a
      // reload forgets the reply grant of requests in flight (allow_responses), and closes the token's connection
      if (used.has(caller) || !identities(state).some((i) => i.name === caller && i.kind === 'joiner')) throw conflict('this join token was used or revoked');
      if (identities(state).some((i) => i.name === agentIdentity(node))) throw conflict(`node ${node} exists already`);
      used.add(caller);
      const file = addIdentity(state, { name: agentIdentity(node), kind: 'agent', node });
      removeIdentity(state, caller);
      setTimeout(() => { try { reloadServer(state); } catch (err) { console.error(`controller: join reload: ${(err as Error).message}`); } }, 100).unref();
      return readFileSync(file, 'utf8');
    },
  });
  let restart;
  try { restart = parseRestart(existsSync(restartsFile) ? readFileSync(restartsFile, 'utf8') : undefined); } catch (err) {
    console.error(`controller: ignoring ${restartsFile}: ${(err as Error).message}`);
  }
  await log.append(subjects.controller, 'ControllerStarted', 'controller', { version: VERSION, ...(restart ? { restart } : {}) });
  console.log(`controller ready at seq ${keeper.view.seq} (${values.nats})`);
  // the log's anchor outside the stream: a purge or a recreated stream cannot pass for an intact log
  let anchored = -1;
  const anchor = async () => {
    const v = keeper.view;
    if (v.seq === anchored) return;
    await writeAnchor(nc, { lastSeq: v.seq, heads: v.sources, ts: Date.now() }, signer, reg).then(() => { anchored = v.seq; }, (err) => console.error(`controller: anchor: ${(err as Error).message}`));
  };
  await anchor();
  setInterval(() => void anchor(), ANCHOR_EVERY_MS).unref();
  const stop = async () => {
    await keeper.stop().catch(() => undefined);
    if (reader !== nc) await reader.close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`controller: ${(err as Error).message}`);
  process.exit(1);
});
