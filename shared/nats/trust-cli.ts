// ops/up's entry to the trust generator (shared/nats/trust.ts): makes whatever is missing
// of the keys, certificates, identities and nats.conf under the state dir.
// usage: node dist/shared/nats/trust-cli.js init --state-dir DIR --port PORT [--node NAME]
import { parseArgs } from 'node:util';
import { initTrust, credsPath } from './trust.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'state-dir': { type: 'string' }, port: { type: 'string' }, node: { type: 'string' } } });
try {
  if (positionals[0] !== 'init' || !values['state-dir'] || !values.port) throw new Error('usage: trust-cli init --state-dir DIR --port PORT [--node NAME]');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid --port "${values.port}"`);
  initTrust(values['state-dir'], { port, ...(values.node ? { node: values.node } : {}) });
  console.log(credsPath(values['state-dir'], 'admin'));
} catch (err) {
  console.error(`trust: ${(err as Error).message}`);
  process.exit(1);
}
