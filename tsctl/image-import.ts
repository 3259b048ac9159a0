// `tsctl image import`: checks the file is a rootfs tar, uploads it content-addressed to
// the cluster's object store, then asks the controller to record ImageImported.
import { createReadStream, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { StorageType, type NatsConnection } from 'nats';
import * as tar from 'tar';
import { api, CliError } from './client.js';
import { IMAGE_BUCKET } from '../shared/subjects.js';
import { NAME_RE } from '../shared/ids.js';
import { controllerApi } from '../shared/api/controller.js';

export async function importImage(nc: NatsConnection, file: string, name: string, user: string): Promise<{ digest: string }> {
  let size: number;
  try { size = statSync(file).size; } catch (err) { throw new CliError(`cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`); }
  if (!NAME_RE.test(name)) throw new CliError(`invalid image name "${name}": letters, digits, _ . -`);
  const { digest, entries } = await inspectTar(file);
  if (entries === 0) throw new CliError(`"${file}" is not a rootfs tar: it holds no entries`);
  const js = nc.jetstream();
  const os = await js.views.os(IMAGE_BUCKET, { storage: StorageType.File });
  const key = digest.replace(':', '-');
  const have = await os.info(key);
  if (!have || have.size !== size) {
    await os.put({ name: key, description: `rootfs layer ${digest}` }, Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>);
  }
  await api(nc, controllerApi.imageImport, { name, digest, user });
  return { digest };
}

async function inspectTar(file: string): Promise<{ digest: string; entries: number }> {
  const hash = createHash('sha256');
  let entries = 0;
  try {
    await tar.t({ file, strict: true, onReadEntry: () => { entries++; } });
  } catch (err) {
    throw new CliError(`"${file}" is not a valid tar: ${(err as Error).message}`);
  }
  await new Promise<void>((resolve, reject) => {
    createReadStream(file).on('data', (c) => hash.update(c)).on('end', resolve)
      .on('error', (err) => reject(new CliError(`cannot read "${file}": ${err.message}`)));
  });
  return { digest: `sha256:${hash.digest('hex')}`, entries };
}
