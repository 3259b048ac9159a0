// Network benchmark (not a test): what the default bridge network costs a container start,
// against --network none, and what a published port costs in throughput, against a direct
// connection to the container, same run, same machine. Talks only to loopback and to the
// benchmark's own container.
//   node dist/test/bench/network.js [N] [MB]
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import { Cluster, until } from '../helpers/cluster.js';

const N = Number(process.argv[2] ?? 30);
const MB = Number(process.argv[3] ?? 200);
const ROUNDS = 5;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (ms: number) => `${ms.toFixed(2)} ms`;

/** Sends `mb` MiB to host:port and waits until the sink has closed its side; MB/s, bounded by `timeoutMs`. */
function send(host: string, port: number, mb: number, timeoutMs = 30_000): Promise<number> {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  return new Promise((resolve, reject) => {
    let left = mb;
    const t0 = performance.now();
    const s = connect(port, host);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${host}:${port}: ${mb} MB not delivered within ${timeoutMs} ms`)); }, timeoutMs);
    const pump = () => {
      while (left > 0) {
        left -= 1;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.once('connect', pump);
    s.resume(); // the sink sends nothing; reading lets 'end' and 'close' arrive
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    s.once('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      if (left > 0) return reject(new Error(`${host}:${port}: closed with ${left} MB unsent`));
      resolve(mb / ((performance.now() - t0) / 1000));
    });
  });
}

async function main(): Promise<void> {
  const c = await Cluster.start();
  try {
    await c.importBusybox();
    // warm both paths: layer unpacked, caches hot, default bridge in use once
    await c.ok(['run', '--rm', '--network', 'none', 'busybox', 'true']);
    await c.ok(['run', '--rm', 'busybox', 'true']);

    // start latency, alternating modes so drift hits both alike
    for (let i = 0; i < N; i++) {
      for (const net of ['none', 'bridge']) {
        const r = await c.tsctl(['run', '--rm', '--network', net, 'busybox', 'true']);
        if (r.code !== 0) throw new Error(`run --network ${net} failed: ${r.stderr}`);
      }
    }
    const events = (await c.ok(['events', '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l));
    const started = events.filter((e) => e.type === 'ContainerStarted').slice(-2 * N);
    const none = started.filter((e) => !e.data.ip).map((e) => e.data.runningAt - e.data.receivedAt);
    const bridge = started.filter((e) => e.data.ip).map((e) => e.data.runningAt - e.data.receivedAt);
    if (none.length !== N || bridge.length !== N) throw new Error(`expected ${N} starts of each mode, got ${none.length} none and ${bridge.length} bridge`);

    // throughput: a persistent sink (nc -ll forks dd per connection) published on a free port
    const hostPort = randomInt(30000, 40000);
    const id = (await c.ok(['run', '-d', '--name', 'sink', '-p', `${hostPort}:80`, 'busybox', 'nc', '-ll', '-p', '80', '-e', 'dd', 'of=/dev/null', 'bs=1M'])).trim();
    const ip = JSON.parse(await c.ok(['inspect', id]))[0].NetworkSettings.IPAddress as string;
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new Error(`sink has no address (${ip})`);
    await until(() => send(ip, 80, 1).catch(() => undefined), 10_000, 'the sink to listen');
    const direct: number[] = [], published: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      direct.push(await send(ip, 80, MB));
      published.push(await send('127.0.0.1', hostPort, MB));
    }
    await c.ok(['rm', '-f', 'sink']);

    const mn = median(none), mb = median(bridge), md = median(direct), mp = median(published);
    console.log(`swarmlite network benchmark, N=${N}, ${new Date().toISOString()}`);
    console.log(`desired event -> process running, --network none  median ${f(mn)}`);
    console.log(`desired event -> process running, bridge          median ${f(mb)}  (+${f(mb - mn)}; goal <= +10 ms)`);
    console.log(`direct to container ${ip}:80                  median ${md.toFixed(0)} MB/s  (${ROUNDS} x ${MB} MB)`);
    console.log(`published port 127.0.0.1:${hostPort} -> :80           median ${mp.toFixed(0)} MB/s  ratio ${(mp / md).toFixed(2)}  (goal >= 0.8)`);
  } finally {
    await c.stop();
  }
}

main().catch((err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
