// Pure parsing and validation of docker-style resource flags (shared/limits.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  LimitError, allocated, cpuList, parseBlkioWeight, parseBytes, parseCpuShares, parseCpus, parseCpusetCpus,
  parseMemory, parseMemorySwap, parsePidsLimit, parseResourceFlags, validateResources,
} from '../shared/limits.js';

const MiB = 1024 * 1024;

function rejects(fn: () => unknown, flag: string, re: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, LimitError);
    const err = e as LimitError;
    assert.is(err.flag, flag);
    assert.ok(re.test(err.message), `message "${err.message}" should match ${re}`);
    assert.not.ok(err.message.includes('\n'), 'one line');
    return;
  }
  assert.unreachable(`expected LimitError for ${flag}`);
}

test('limits - parseBytes takes docker units', () => {
  assert.is(parseBytes('1048576'), MiB);
  assert.is(parseBytes('512k'), 512 * 1024);
  assert.is(parseBytes('64m'), 64 * MiB);
  assert.is(parseBytes('64M'), 64 * MiB);
  assert.is(parseBytes('64mb'), 64 * MiB);
  assert.is(parseBytes('64MiB'), 64 * MiB);
  assert.is(parseBytes('1g'), 1024 * MiB);
  assert.is(parseBytes('1.5g'), 1536 * MiB);
  assert.is(parseBytes('100b'), 100);
});

test('limits - parseBytes rejects junk with the fix in one line', () => {
  rejects(() => parseBytes('64x'), '--memory', /^invalid --memory "64x": use a number with an optional unit b, k, m or g$/);
  rejects(() => parseBytes(''), '--memory', /use a number/);
  rejects(() => parseBytes('-5m'), '--memory', /use a number/);
  rejects(() => parseBytes('m'), '--memory', /use a number/);
  rejects(() => parseBytes('1e3'), '--memory', /use a number/);
});

test('limits - memory minimum is 6m', () => {
  assert.is(parseMemory('6m'), 6 * MiB);
  rejects(() => parseMemory('4m'), '--memory', /minimum is 6m/);
});

test('limits - memory-swap is -1 or at least memory, and needs memory', () => {
  assert.is(parseMemorySwap('-1', 64 * MiB), -1);
  assert.is(parseMemorySwap('128m', 64 * MiB), 128 * MiB);
  assert.is(parseMemorySwap('64m', 64 * MiB), 64 * MiB);
  rejects(() => parseMemorySwap('32m', 64 * MiB), '--memory-swap', /at least --memory/);
  rejects(() => parseMemorySwap('128m', undefined), '--memory-swap', /set --memory as well/);
  rejects(() => parseMemorySwap('lots', 64 * MiB), '--memory-swap', /use a number/);
});

test('limits - cpus is a positive decimal', () => {
  assert.is(parseCpus('0.5'), 0.5);
  assert.is(parseCpus('2'), 2);
  assert.is(parseCpus('.25'), 0.25);
  rejects(() => parseCpus('0'), '--cpus', /positive number/);
  rejects(() => parseCpus('-1'), '--cpus', /positive number/);
  rejects(() => parseCpus('half'), '--cpus', /^invalid --cpus "half": use a positive number of CPUs/);
  rejects(() => parseCpus('0.001'), '--cpus', /at least 0.01/);
});

test('limits - cpus above the node count is refused by validate', () => {
  assert.equal(validateResources({ cpus: 2 }, { cpus: 2 }), { cpus: 2 });
  rejects(() => validateResources({ cpus: 3 }, { cpus: 2 }), '--cpus', /node has 2 CPUs; use at most 2/);
});

test('limits - cpu-shares range 2..262144', () => {
  assert.is(parseCpuShares('2'), 2);
  assert.is(parseCpuShares('262144'), 262144);
  rejects(() => parseCpuShares('1'), '--cpu-shares', /2 to 262144/);
  rejects(() => parseCpuShares('262145'), '--cpu-shares', /2 to 262144/);
  rejects(() => parseCpuShares('1.5'), '--cpu-shares', /whole number/);
});

test('limits - pids-limit positive or -1', () => {
  assert.is(parsePidsLimit('20'), 20);
  assert.is(parsePidsLimit('-1'), -1);
  rejects(() => parsePidsLimit('0'), '--pids-limit', /or -1 for unlimited/);
  rejects(() => parsePidsLimit('-2'), '--pids-limit', /or -1 for unlimited/);
  rejects(() => parsePidsLimit('ten'), '--pids-limit', /whole number/);
});

test('limits - blkio-weight range 10..1000', () => {
  assert.is(parseBlkioWeight('500'), 500);
  rejects(() => parseBlkioWeight('5'), '--blkio-weight', /10 to 1000/);
});

test('limits - cpuset-cpus syntax and node bounds', () => {
  assert.is(parseCpusetCpus('0'), '0');
  assert.is(parseCpusetCpus('0-1'), '0-1');
  assert.is(parseCpusetCpus('0,1'), '0,1');
  assert.equal(cpuList('0-2,5,1'), [0, 1, 2, 5]);
  rejects(() => parseCpusetCpus('a'), '--cpuset-cpus', /CPU numbers and ranges/);
  rejects(() => parseCpusetCpus('1-0'), '--cpuset-cpus', /CPU numbers and ranges/);
  rejects(() => parseCpusetCpus('0,,1'), '--cpuset-cpus', /CPU numbers and ranges/);
  rejects(() => parseCpusetCpus(''), '--cpuset-cpus', /CPU numbers and ranges/);
  assert.ok(validateResources({ cpusetCpus: '0-1' }, { cpus: 2 }));
  rejects(() => validateResources({ cpusetCpus: '0-2' }, { cpus: 2 }), '--cpuset-cpus', /CPU 2 does not exist; the node has CPUs 0-1/);
});

test('limits - validateResources re-checks values that skipped the parsers', () => {
  rejects(() => validateResources({ memory: 1024 }), '--memory', /minimum is 6m/);
  rejects(() => validateResources({ memory: 64 * MiB, memorySwap: 32 * MiB }), '--memory-swap', /at least --memory/);
  rejects(() => validateResources({ pidsLimit: 0 }), '--pids-limit', /-1 for unlimited/);
  rejects(() => validateResources({ cpuShares: 1 }), '--cpu-shares', /2 to 262144/);
  rejects(() => validateResources({ cpus: Number.NaN }), '--cpus', /positive number/);
  assert.equal(validateResources({ memory: 64 * MiB, memorySwap: -1, pidsLimit: -1 }), { memory: 64 * MiB, memorySwap: -1, pidsLimit: -1 });
});

test('limits - parseResourceFlags parses a whole command line', () => {
  const r = parseResourceFlags({ '--cpus': '0.5', '--memory': '64m', '--memory-swap': '128m', '--pids-limit': '20', '--cpuset-cpus': '0', '--cpu-shares': '512' }, { cpus: 2 });
  assert.equal(r, { cpus: 0.5, cpuShares: 512, cpusetCpus: '0', memory: 64 * MiB, memorySwap: 128 * MiB, pidsLimit: 20 });
  rejects(() => parseResourceFlags({ '--memory-swap': '1g' }), '--memory-swap', /set --memory as well/);
});

test('limits - allocated sums quotas, cpusets and memory', () => {
  assert.equal(allocated([]), { cpus: 0, memory: 0 });
  assert.equal(
    allocated([{ cpus: 0.5, memory: 64 * MiB }, { cpusetCpus: '0-1' }, { cpus: 0.25, cpusetCpus: '0' }, undefined, { memory: -1 }]),
    { cpus: 2.75, memory: 64 * MiB },
  );
});

test.run();
