// ops/up's and ops/fleet's entry to the trust generator (shared/nats/trust.ts): makes
// whatever is missing of the keys, certificates, identities and nats.conf under the state dir.
// usage: node dist/shared/nats/trust-cli.js init --state-dir DIR --port PORT [--node NAME[,NAME...]]
//          [--cluster nats://h1:6222,... --server-name NAME] [--san ADDR,...] [--url tls://h1:4222,...]
//   --cluster: this server is one of a JetStream cluster routing to those urls (its own
//   included: nats-server skips itself); --san: addresses the server certificate names
//   (the route hosts are added); --url: what the credentials' clients dial.
import { parseArgs } from 'node:util';
import { initTrust, credsPath, type ClusterOptions } from './trust.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'state-dir': { type: 'string' }, port: { type: 'string' }, node: { type: 'string' },
    cluster: { type: 'string' }, 'server-name': { type: 'string' }, san: { type: 'string' }, url: { type: 'string' },
  },
});
try {
  if (positionals[0] !== 'init' || !values['state-dir'] || !values.port) throw new Error('usage: trust-cli init --state-dir DIR --port PORT [--node NAME] [--cluster URLS --server-name NAME] [--san ADDRS] [--url URLS]');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid --port "${values.port}"`);
  const list = (s?: string) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  let cluster: ClusterOptions | undefined;
  const sans = list(values.san);
  if (values.cluster) {
    const routes = list(values.cluster);
    const m = /:([0-9]+)$/.exec(routes[0] ?? '');
    if (!values['server-name']) throw new Error('--cluster needs --server-name');
    cluster = { serverName: values['server-name'], routePort: Number(m?.[1] ?? 6222), routes };
    for (const r of routes) { const h = /^nats(?:-route)?:\/\/([^:/]+):/.exec(r)?.[1]; if (h) sans.push(h); }
  }
  if (values.url) for (const u of list(values.url)) { const h = /^(?:tls|nats):\/\/([^:/]+):/.exec(u)?.[1]; if (h) sans.push(h); }
  // --node a,b,c: this host's node and the identities of others (a cluster's first host makes them all)
  for (const node of values.node ? list(values.node) : [undefined]) {
    initTrust(values['state-dir'], { port, ...(node ? { node } : {}), ...(cluster ? { cluster } : {}), sans, ...(values.url ? { url: values.url } : {}) });
  }
  console.log(credsPath(values['state-dir'], 'admin'));
} catch (err) {
  console.error(`trust: ${(err as Error).message}`);
  process.exit(1);
}
