// Every id and name pattern of the wire, once. Subjects are built from these tokens, so a
// value that matches one of them is always exactly one NATS subject token.

/** A subject token: node ids, stream entities of containers and networks. */
export const TOKEN_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Docker's container id: 64 lower-case hex digits. */
export const CONTAINER_ID_RE = /^[0-9a-f]{64}$/;
/** An abbreviated container id as users type it (docker accepts any unique prefix). */
export const ID_PREFIX_RE = /^[0-9a-f]{3,63}$/;
/** Container and image names, as docker allows them. */
export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
/**
 * An image name: a plain name, or a registry reference as docker writes it
 * ([host[:port]/]path[:tag]); no "@digest" (the digest is recorded beside the name).
 */
export const IMAGE_NAME_RE = /^(?:[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}|(?:[a-zA-Z0-9.-]+(?::[0-9]{1,5})?\/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?)$/;
export const NETWORK_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
export const SHA256_HEX_RE = /^[0-9a-f]{64}$/;
/** The `entity` of an event: a container id, `net-<name>`, a node id, an image hex. */
export const ENTITY_RE = /^[a-z0-9][a-z0-9_:-]{0,127}$/;
export const EVENT_ID_RE = /^[0-9a-z]+$/;
export const SOURCE_RE = /^(controller|node:[a-z0-9][a-z0-9_-]*|tsctl)$/;
export const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/;

export const isContainerId = (s: string): boolean => CONTAINER_ID_RE.test(s);
