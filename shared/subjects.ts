// Subject layout of the EVENTS stream and of the request/reply APIs.
// Ids are validated to [a-z0-9_-] elsewhere, so they are always one subject token.

export const STREAM = 'EVENTS';
export const IMAGE_BUCKET = 'swarmlite-images';

export const subjects = {
  all: 'ev.>',
  desired: (node: string, ctr: string) => `ev.desired.${node}.${ctr}`,
  desiredFor: (node: string) => `ev.desired.${node}.>`,
  state: (node: string, ctr: string) => `ev.state.${node}.${ctr}`,
  stateFor: (node: string) => `ev.state.${node}.>`,
  node: (node: string) => `ev.node.${node}`,
  image: (hex: string) => `ev.image.${hex}`,
  /** live container output, published by the agent that runs it */
  logs: (node: string, ctr: string) => `logs.${node}.${ctr}`,
  api: (verb: string) => `api.${verb}`,
  agent: (node: string, verb: string) => `agent.${node}.${verb}`,
};

export const TOKEN_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
