// tsctl stats and agent.<node>.stats without a cluster: the CPU % arithmetic, the rows
// and table, and the agent's choice of containers, over fakes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpuPercent, render, toRow } from '../tsctl/stats.js';
import { sampleStats, type ContainerSample } from '../agent/stats.js';
import { agentApi } from '../shared/api/agent.js';
import { decodeRequest } from '../shared/rpc.js';
import type { CgroupStats } from '../agent/cgroups/index.js';
import { buildProgram, runProgram, type Actions, type RunOpts } from '../tsctl/program.js';

const MiB = 1024 * 1024;
const A = 'a'.repeat(64), B = 'b'.repeat(64), C = 'c'.repeat(64);

const sample = (over: Partial<ContainerSample>): ContainerSample => ({
  id: A, name: 'web', cpuUsageNs: 0, ts: 1000, memoryUsage: 8 * MiB, memoryLimit: 32 * MiB, memoryLimited: true, pids: 3, oomKills: 0, ...over,
});

test('stats - cpu % is cpu time over wall time between two samples, 100% per busy cpu', () => {
  assert.is(cpuPercent(undefined, sample({})), 0);
  assert.is(cpuPercent(sample({ ts: 1000, cpuUsageNs: 0 }), sample({ ts: 2000, cpuUsageNs: 5e8 })), 50);
  assert.is(cpuPercent(sample({ ts: 1000, cpuUsageNs: 0 }), sample({ ts: 1500, cpuUsageNs: 1e9 })), 200);
  // a counter that went back (group recreated) or no time passed: 0, never negative or infinite
  assert.is(cpuPercent(sample({ ts: 1000, cpuUsageNs: 9e9 }), sample({ ts: 2000, cpuUsageNs: 1e9 })), 0);
  assert.is(cpuPercent(sample({ ts: 1000 }), sample({ ts: 1000, cpuUsageNs: 5 })), 0);
});

test('stats - rows carry memory % and render as docker\'s columns', () => {
  const r = toRow('n1', sample({ ts: 2000, cpuUsageNs: 123456789 }), sample({ ts: 1000, cpuUsageNs: 0 }));
  assert.equal(r, { id: A, name: 'web', node: 'n1', cpuPercent: 12.35, cpuUsageNs: 123456789, ts: 2000, memoryUsage: 8 * MiB, memoryLimit: 32 * MiB, memoryPercent: 25, pids: 3, running: true });
  const out = render([r]).split('\n');
  assert.is(out.length, 2);
  assert.match(out[0], /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS$/);
  assert.match(out[1], /^aaaaaaaaaaaa\s+web\s+12\.35%\s+8MiB \/ 32MiB\s+25\.00%\s+3$/);
  assert.is(toRow('n', sample({ memoryLimit: 0 })).memoryPercent, 0);
});

test('stats - the agent samples running containers only, with names from its checkpoint', () => {
  const running = new Set([A, B]);
  const stats = (id: string): CgroupStats => {
    if (id === B) throw new Error('gone'); // removed between status() and the read
    return { cpuUsageNs: 42, memoryUsage: MiB, memoryLimit: id === A ? 32 * MiB : null, pids: 2, oomKills: 0 };
  };
  const recs: Record<string, { reported: 'running' | 'exited'; spec?: { name: string } }> = {
    [A]: { reported: 'running', spec: { name: 'web' } }, [B]: { reported: 'running', spec: { name: 'db' } }, [C]: { reported: 'exited', spec: { name: 'old' } },
  };
  const src = {
    node: 'n1',
    host: { status: (id: string) => (running.has(id) ? { state: 'running' } : { state: 'exited' }), known: () => [A, B, C] },
    checkpoint: { get: (id: string) => recs[id], all: () => Object.entries(recs) },
    stats,
  } as unknown as Parameters<typeof sampleStats>[0];
  const all = sampleStats(src, {});
  assert.is(all.node, 'n1');
  assert.ok(all.cpus >= 1);
  assert.equal(all.containers.map((c) => [c.id, c.name, c.memoryLimited]), [[A, 'web', true]]);
  assert.is(all.containers[0].memoryLimit, 32 * MiB);
  assert.ok(Math.abs(all.containers[0].ts - Date.now()) < 1000);
  assert.equal(sampleStats(src, { ids: [C] }).containers, []);
  assert.equal(sampleStats(src, { ids: [A, A] }).containers.length, 1);
  // ids are checked by the verb's contract before the agent sees them
  assert.throws(() => decodeRequest(agentApi.stats, new TextEncoder().encode(JSON.stringify({ ids: ['../etc'] }))), /invalid request: ids\[0\]/);
  // unlimited: the node's memory, as docker shows it
  running.add(C);
  const c = sampleStats(src, { ids: [C] }).containers[0];
  assert.is(c.memoryLimited, false);
  assert.ok(c.memoryLimit > 64 * MiB);
});

test('stats - tsctl parses stats and update as docker does', async () => {
  const calls: { verb: string; args: unknown[] }[] = [];
  const a = new Proxy({}, { get: (_t, k: string) => async (...args: unknown[]) => { calls.push({ verb: k, args }); } }) as unknown as Actions;
  const parse = (argv: string[]) => runProgram(buildProgram(a), argv);
  await parse(['stats']);
  await parse(['stats', '--no-stream', '--format', 'json', 'web', 'db']);
  await parse(['update', '-m', '48m', '--cpus', '0.25', '--pids-limit', '30', 'web']);
  assert.equal(calls[0], { verb: 'stats', args: [[], { noStream: false, format: undefined }] });
  assert.equal(calls[1], { verb: 'stats', args: [['web', 'db'], { noStream: true, format: 'json' }] });
  const [refs, o] = calls[2].args as [string[], RunOpts];
  assert.equal(refs, ['web']);
  assert.equal([o.memory, o.cpus, o.pidsLimit], ['48m', '0.25', '30']);
});

test.run();
