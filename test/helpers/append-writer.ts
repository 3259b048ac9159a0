// A writer process for the appender fault test: recovers its chain head from the stream
// (as an agent does at start), registers its key on first start, then appends COUNT events
// with a window in flight, printing "acked N" as they are stored; the test SIGKILLs it mid-window.
//   node dist/test/helpers/append-writer.js URL CREDS NODE COUNT
import { connect } from 'nats';
import { readersFor } from '../../shared/nats/readers.js';
import { Appender, chainHeadFromStream } from '../../shared/nats/log.js';
import { connectOptions, readCreds, signerOf } from '../../shared/nats/trust.js';
import { subjects } from '../../shared/subjects.js';

const [url, credsFile, node, count] = process.argv.slice(2) as [string, string, string, string];
const creds = readCreds(credsFile);
const nc = readersFor(await connect({ ...connectOptions(creds, url), name: `writer-${node}` }), creds);
const { signer, reg } = signerOf(creds);
const chain = await chainHeadFromStream(await nc.jetstreamManager(), nc, `node:${node}`, [subjects.keys(`node-${node}`), `ev.state.${node}.>`]);
const log = new Appender(nc.jetstream(), chain, signer, { window: 64, nc });
if (chain.position.srcSeq === 0) await log.append(subjects.keys(`node-${node}`), 'KeyRegistered', node, { key: reg.key, rootSig: reg.rootSig });
let acked = 0;
await Promise.all(Array.from({ length: Number(count) }, (_, i) => {
  const id = (i % 16).toString(16).repeat(64);
  return log.append(subjects.state(node, id), 'ContainerExited', id, { exitCode: 0, oomKilled: false, exitedAt: Date.now() }).then(() => {
    if (++acked % 100 === 0) process.stdout.write(`acked ${acked}\n`);
  });
}));
process.stdout.write('done\n');
await nc.close();
