// Networking as a user sees it, through tsctl on a real cluster: published ports (-p, and -P
// for what the image exposes), user
// networks with names, isolation, the four modes, and no leaks after rm or an agent crash.
// Peers are only this test's own containers and a "client host" network namespace it makes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until, sleep } from './helpers/cluster.js';
import { freeSubnet } from './helpers/subnets.js';
import { shortNodeName } from '../agent/network/manager.js';

const t = suite('network-e2e');
let c: Cluster;
const tag = randomBytes(2).toString('hex');
// /24s no interface of this host overlaps (helpers/subnets.ts): the client's link, two user networks
const octet = Number(freeSubnet([251, 252]).split('.')[2]);
const clientNs = `swlc${tag}`;
const hostIf = `swlh${tag}`, peerIf = `swlp${tag}`;
const hostAddr = `10.251.${octet}.1`, clientAddr = `10.251.${octet}.2`;
const port = 20000 + (randomBytes(2).readUInt16BE() % 20000);
const sh = (cmd: string[], input?: string) => spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', input, timeout: 20000 });

// this node's links only: other clusters may run beside this test
const links = () => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => l.split(': ')[1]?.split('@')[0])
  .filter((n): n is string => !!n && n.startsWith(`swl${shortNodeName(c.node)}`));
const nftRules = () => sh(['nft', '-a', 'list', 'table', 'ip', `swarmlite_${c.node}`]).stdout;
const httpd = (name: string, extra: string[] = []) => ['run', '-d', '--name', name, ...extra, 'busybox', 'sh', '-c', `mkdir -p /www && echo hello-from-${name} > /www/index.html && exec httpd -f -p 80 -h /www`];

t.before(async () => {
  c = await Cluster.start();
  await c.importBusybox();
  // the client host: its own namespace, linked to the host by a veth pair on a /30
  sh(['ip', 'netns', 'add', clientNs]);
  sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf]);
  sh(['ip', 'link', 'set', peerIf, 'netns', clientNs]);
  sh(['ip', 'addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
  sh(['ip', 'link', 'set', hostIf, 'up']);
  sh(['ip', 'netns', 'exec', clientNs, 'ip', 'addr', 'add', `${clientAddr}/30`, 'dev', peerIf]);
  sh(['ip', 'netns', 'exec', clientNs, 'ip', 'link', 'set', peerIf, 'up']);
  sh(['ip', 'netns', 'exec', clientNs, 'ip', 'link', 'set', 'lo', 'up']);
});

t.after(async () => {
  sh(['ip', 'link', 'del', hostIf]);
  sh(['ip', 'netns', 'del', clientNs]);
  await c?.stop();
});

t('ports - a published port answers at 127.0.0.1 and from a client host at the host\'s address', async () => {
  const id = (await c.ok(httpd('web', ['-p', `${port}:80`]))).trim();
  const body = await until(async () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()).catch(() => undefined), 5000, 'httpd on 127.0.0.1');
  assert.is(body, 'hello-from-web\n');
  const remote = sh(['ip', 'netns', 'exec', clientNs, 'curl', '-s', '--max-time', '5', `http://${hostAddr}:${port}/`]);
  assert.is(remote.stdout, 'hello-from-web\n', remote.stderr);
  assert.is((await c.ok(['port', 'web'])).trim(), `80/tcp -> 0.0.0.0:${port}`);
  const ins = JSON.parse(await c.ok(['inspect', id]))[0];
  assert.match(ins.NetworkSettings.IPAddress, /^10\.\d+\.\d+\.\d+$/);
});

t('ports - a port already published is a clear error', async () => {
  const r = await c.tsctl(httpd('web2', ['-p', `${port}:80`]));
  assert.is(r.code, 125);
  assert.match(r.stderr, new RegExp(`port ${port}/tcp .*already published by container web`));
});

t('ports - -P publishes what the image exposes on free host ports, -p CONTAINER alone too; each answers at 127.0.0.1', async () => {
  const ctx = join(c.dir, 'exposing');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nEXPOSE 80 9/udp\n');
  await c.ok(['build', '-t', `exposing${tag}:1`, ctx]);
  await c.ok(['run', '-d', '--name', 'webp', '-P', `exposing${tag}:1`, 'sh', '-c', 'mkdir -p /www && echo hello-from-webp > /www/index.html && exec httpd -f -p 80 -h /www']);
  const lines = (await c.ok(['port', 'webp'])).trim().split('\n').sort();
  assert.is(lines.length, 2, lines.join('\n'));
  const tcp = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/.exec(lines[0]!), udp = /^9\/udp -> 0\.0\.0\.0:(\d+)$/.exec(lines[1]!);
  assert.ok(tcp && udp, lines.join('\n'));
  for (const h of [Number(tcp![1]), Number(udp![1])]) assert.ok(h >= 32768 && h <= 60999, `${h} in the ephemeral range`);
  const body = await until(async () => fetch(`http://127.0.0.1:${tcp![1]}/`).then((r) => r.text()).catch(() => undefined), 10000, 'httpd on the picked port');
  assert.is(body, 'hello-from-webp\n');
  // -p 80: a free host port too, not the one webp holds
  await c.ok(httpd('webq', ['-p', '80']));
  const q = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/.exec((await c.ok(['port', 'webq'])).trim());
  assert.ok(q && q[1] !== tcp![1], `webq on ${q?.[1]}, webp on ${tcp![1]}`);
  assert.is(await until(async () => fetch(`http://127.0.0.1:${q![1]}/`).then((r) => r.text()).catch(() => undefined), 10000, 'webq'), 'hello-from-webq\n');
  const bad = await c.tsctl(['run', '--rm', '-p', '0:80', 'busybox', 'true']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /ports are 1 to 65535/);
  await c.ok(['rm', '-f', 'webp', 'webq']);
});

t('modes - container: shares the other container\'s network, none has only lo, host is the host\'s', async () => {
  const shared = await c.tsctl(['run', '--rm', '--network', 'container:web', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:80/']);
  assert.is(shared.stdout, 'hello-from-web\n', shared.stderr);
  const none = await c.tsctl(['run', '--rm', '--network', 'none', 'busybox', 'ls', '/sys/class/net']);
  assert.equal(none.stdout.trim().split(/\s+/), ['lo']);
  const host = await c.tsctl(['run', '--rm', '--network', 'host', 'busybox', 'ls', '/sys/class/net']);
  assert.ok(host.stdout.split(/\s+/).includes(hostIf), host.stdout);
  const bridge = await c.tsctl(['run', '--rm', 'busybox', 'ls', '/sys/class/net']);
  assert.equal(bridge.stdout.trim().split(/\s+/).sort(), ['eth0', 'lo']);
});

t('names - containers on one user network reach each other by name; networks are isolated', async () => {
  const a = freeSubnet([252, 253]), b = freeSubnet([253, 254]);
  await c.ok(['network', 'create', '--subnet', a, `front${tag}`]);
  await c.ok(['network', 'create', '--subnet', b, `back${tag}`]);
  const overlap = await c.tsctl(['network', 'create', '--subnet', a, `dup${tag}`]);
  assert.is(overlap.code, 125);
  assert.match(overlap.stderr, /overlaps network/);
  await c.ok(httpd('db', ['--network', `back${tag}`]));
  const byName = await c.tsctl(['run', '--rm', '--network', `back${tag}`, 'busybox', 'wget', '-qO-', 'http://db/']);
  assert.is(byName.stdout, 'hello-from-db\n', byName.stderr);
  const dbIp = JSON.parse(await c.ok(['inspect', 'db']))[0].NetworkSettings.IPAddress as string;
  const cross = await c.tsctl(['run', '--rm', '--network', `front${tag}`, 'busybox', 'wget', '-T', '2', '-qO-', `http://${dbIp}/`]);
  assert.is.not(cross.code, 0, 'front reached back');
  const noName = await c.tsctl(['run', '--rm', '--network', `front${tag}`, 'busybox', 'sh', '-c', 'grep -w db /etc/hosts || echo no-db']);
  assert.is(noName.stdout.trim(), 'no-db');
  const inUse = await c.tsctl(['network', 'rm', `back${tag}`]);
  assert.is(inUse.code, 125);
  assert.match(inUse.stderr, /in use by container db/);
});

t('cleanup - rm removes veth, rules and address; a crashed agent leaks nothing and reuses no address', async () => {
  const before = links().length;
  const rulesBefore = nftRules();
  const id = (await c.ok(['run', '-d', '--name', 'tmp', '-p', `${port + 1}:80`, 'busybox', 'sleep', '100'])).trim();
  assert.is(links().length, before + 1, 'one host-side veth per container');
  assert.match(nftRules(), new RegExp(`${port + 1}`));
  await c.ok(['rm', '-f', id]);
  assert.is(links().length, before);
  assert.not.match(nftRules(), new RegExp(`dport ${port + 1}`));
  assert.is(nftRules().split('\n').length, rulesBefore.split('\n').length);

  // crash: a container started, the agent SIGKILLed, the container removed behind its back
  const ip1 = JSON.parse(await c.ok(['inspect', 'web']))[0].NetworkSettings.IPAddress;
  await c.killAgent();
  c.startAgent();
  await c.waitJoined();
  assert.is(links().length, before, 'restart duplicated or leaked links');
  const again = (await c.ok(['run', '-d', '--name', 'after', 'busybox', 'sleep', '100'])).trim();
  const ip2 = JSON.parse(await c.ok(['inspect', again]))[0].NetworkSettings.IPAddress;
  assert.is.not(ip2, ip1, 'an address in use was handed out again');
  const body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
  assert.is(body, 'hello-from-web\n', 'the adopted container lost its published port');
  await c.ok(['rm', '-f', 'after', 'web', 'db']);
  await c.ok(['network', 'rm', `front${tag}`, `back${tag}`]);
  await sleep(100);
  assert.equal(links().filter((l) => !/-\d+$/.test(l)), [], 'every container veth is gone');
  assert.is(links().length, 1, 'only the default bridge is left');
});

t.run();
