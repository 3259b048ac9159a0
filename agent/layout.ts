// Every file and folder of one node's state, named in one place:
//   <state>/nodes/<node>/checkpoint/             the agent's memory: journal.<gen>, snapshot.<gen> (pipeline/checkpoint)
//   <state>/nodes/<node>/checkpoint.json         an older agent's memory, migrated into checkpoint/ then deleted
//   <state>/nodes/<node>/layers/<hex>/            unpacked image layers (storage)
//   <state>/nodes/<node>/snapshots/<id>/          a container's writable layer (storage)
//   <state>/nodes/<node>/volumes/<name>/_data     a named volume (-v NAME:/path), kept after its containers
//   <state>/nodes/<node>/volumes/<name>/.copyup   a copy-up of the image's content being made (.copied: made, being moved in; storage/copy-up)
//   <state>/nodes/<node>/bundles/<id>/            OCI bundle: config.json and the rootfs mount
//   <state>/nodes/<node>/runtime/<id>/            the monitor's running/exit records and the log
//   <state>/nodes/<node>/network/                 networks, endpoints, IPAM, netns binds
//   <state>/nodes/<node>/netfiles/<id>/           a sandbox's /etc/hosts, resolv.conf, hostname
import { join } from 'node:path';

export interface NodeLayout {
  readonly root: string;
  readonly checkpoint: string;
  readonly checkpointLegacy: string;
  readonly layers: string;
  readonly snapshots: string;
  /** Named volumes: <volumes>/<name>/_data, as docker's local driver keeps them. */
  readonly volumes: string;
  readonly bundles: string;
  readonly runtime: string;
  readonly network: string;
  readonly netfiles: string;
  bundle(id: string): string;
  rootfs(id: string): string;
}

export function nodeLayout(stateDir: string, node: string): NodeLayout {
  const root = join(stateDir, 'nodes', node);
  const bundles = join(root, 'bundles');
  return {
    root,
    checkpoint: join(root, 'checkpoint'),
    checkpointLegacy: join(root, 'checkpoint.json'),
    layers: join(root, 'layers'),
    snapshots: join(root, 'snapshots'),
    volumes: join(root, 'volumes'),
    bundles,
    runtime: join(root, 'runtime'),
    network: join(root, 'network'),
    netfiles: join(root, 'netfiles'),
    bundle: (id) => join(bundles, id),
    rootfs: (id) => join(bundles, id, 'rootfs'),
  };
}
