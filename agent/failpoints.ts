// The failpoints of shared/failpoints.ts (tsctl's pull has one too), where the agent's modules import them.
export { failpoint, armed } from '../shared/failpoints.js';
