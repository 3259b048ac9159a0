// What a run (or create) request says of the container's life after its start: its restart
// policy, its stop signal and timeout (the image's StopSignal when the request gives none).
// A block of its own so the run verb only spreads it into the spec.
import type { ContainerSpec } from '../../shared/events.js';
import type { RunRequest } from '../../shared/api/controller.js';
import { signalName, SignalError } from '../../shared/signals.js';
import { invalid } from '../../shared/rpc.js';

export function lifecycleSpec(r: RunRequest, imageStopSignal?: string): Pick<ContainerSpec, 'restartPolicy' | 'stopSignal' | 'stopTimeout'> {
  const p = r.restartPolicy;
  // as docker: a container removed at its exit cannot also be started again after it
  if (p && p.name !== 'no' && r.autoRemove) throw invalid(`conflicting options: --restart ${p.name} and --rm (a container removed at its exit is not started again)`);
  let stopSignal: string | undefined;
  const sig = r.stopSignal ?? imageStopSignal;
  if (sig !== undefined) {
    try { stopSignal = signalName(sig); } catch (err) {
      if (err instanceof SignalError && r.stopSignal !== undefined) throw invalid(`invalid --stop-signal ${JSON.stringify(r.stopSignal.slice(0, 32))}: use a name like INT or TERM, or a number`);
      // an image's StopSignal the platform does not know: docker's default
    }
  }
  return {
    ...(p && p.name !== 'no' ? { restartPolicy: p } : {}),
    ...(stopSignal && stopSignal !== 'SIGTERM' ? { stopSignal } : {}),
    ...(r.stopTimeout !== undefined ? { stopTimeout: r.stopTimeout } : {}),
  };
}
