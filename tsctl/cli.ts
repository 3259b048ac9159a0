// Entry point of the bundle (dist/tsctl.cjs) and of the compiled tree (dist/tsctl/cli.js).
// Built into a V8 startup snapshot (tsctl/bundle.mjs), everything above main() runs once at
// build time; each call then starts from the deserialised heap with tsctl's arguments.
import { startupSnapshot } from 'node:v8';
import { nuid } from 'nats';
import { main } from './main.js';
import { mark, startTrace } from './session.js';

if (startupSnapshot.isBuildingSnapshot()) {
  startupSnapshot.setDeserializeMainFunction(() => {
    // nats seeds its id generator on first use; had anything used it while building, every
    // process from the blob would make the same inboxes and request tokens (and read another's
    // replies): reseed here, whatever the modules did at build time
    nuid.reset();
    startTrace('snapshot');
    mark('loaded');
    main(process.argv.slice(1)); // node --snapshot-blob B -- ARGS: argv is [node, ...ARGS]
  });
} else {
  startTrace('bundle');
  mark('loaded');
  main(process.argv.slice(2));
}
