// A controller hears heartbeats from its connect on, not from when its log answers: one that
// starts again while the log's stream elects a leader (its lease was lost to a cut of the host
// that led the lease's and the log's streams) must not give a silent node a whole new silence
// from the end of that wait. Single host, no lease: the controller's own start is what is timed.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Cluster, until } from './helpers/cluster.js';
import { DEFAULT_SILENCE_MS } from '../controller/membership.js';

const t = suite('membership-start');
let c: Cluster | undefined;
t.before(async () => { c = await Cluster.start(); });
t.after(async () => { await c?.stop(); });

/** How long the restarted controller's log takes to answer (SWARMLITE_TEST_LOG_DELAY_MS): longer than a silence. */
const LOG_DELAY_MS = 5000;

t('membership - a controller slow to reach its log counts a silence from its connect', async () => {
  const node = c!.node;
  await until(async () => {
    const r = await c!.tsctl(['node', 'ls', '--format', 'json']);
    return r.code === 0 && (JSON.parse(r.stdout) as { id: string; state?: string }[]).some((n) => n.id === node && (n.state ?? 'ready') === 'ready');
  }, 20_000, `${node} ready`);
  // the controller first (it must not see the agent fall silent), then the agent
  const ctl = c!.controller();
  const gone = new Promise((r) => ctl.once('exit', r));
  ctl.kill('SIGKILL');
  await gone;
  await c!.killAgent();
  const started = Date.now();
  c!.startController({ SWARMLITE_TEST_LOG_DELAY_MS: String(LOG_DELAY_MS) });
  const down = await until(async () => {
    const r = await c!.tsctl(['events', '--filter', 'type=NodeDown', '--format', 'json']);
    if (r.code !== 0) return undefined;
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { ts: number; entity: string; data: { lastSeen?: number } })
      .find((e) => e.entity === node && e.ts >= started);
  }, 30_000, `NodeDown of ${node} from the restarted controller`);
  const heard = down.data.lastSeen! - started;
  console.log(`membership-start: hearing from +${heard} ms, NodeDown at +${down.ts - started} ms (the log answered after ${LOG_DELAY_MS} ms)`);
  // never heard: silent since the controller could hear, its connect (a process start, well
  // under the log's delay) and not the log's answer
  assert.ok(heard < LOG_DELAY_MS - 1000, `silence counted from +${heard} ms, after the log's wait`);
  assert.ok(down.ts - down.data.lastSeen! >= DEFAULT_SILENCE_MS, `NodeDown ${down.ts - down.data.lastSeen!} ms into the silence`);
  // down as soon as it leads (the log answered), not a whole silence after that
  assert.ok(down.ts - started < LOG_DELAY_MS + DEFAULT_SILENCE_MS, `NodeDown at +${down.ts - started} ms`);
});

t.run();
