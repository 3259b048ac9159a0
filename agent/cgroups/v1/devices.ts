// v1 devices: each rule is one line written to devices.deny or devices.allow, in order.
// The kernel keeps a default (allow or deny all) and a list of exceptions; "a" resets both,
// so Docker's list — deny "a" first, then the allowed devices — ends default-deny.
import { checkDeviceRule, ruleLine } from '../device-rules.js';
import type { DeviceRule, Plan } from '../types.js';

export function plan(rules: readonly DeviceRule[]): Plan {
  return {
    writes: rules.map((r, i) => {
      checkDeviceRule(r, i);
      return { file: r.allow ? 'devices.allow' : 'devices.deny', value: ruleLine(r) };
    }),
    warnings: [],
  };
}
