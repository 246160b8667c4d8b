// connection-churn: connections close slowly and new ones keep coming.
//
// For `duration`, closes through `link` are held `close_delay` (slow-close:
// half-closed connections pile up, as behind an overloaded load balancer),
// and a share (`probability`) of connections is reset after `reset_after`.
// The scenario probes `probe_target` (by default the link) every
// `interval`, each probe a new connection, and reports the failed share.
//
// Passes when failed probes stay within `max_failure_percent` and the probe
// is healthy again within `recover_within` after. Needs: `slow-close` and
// `reset-peer` on `link`.
import { scenario, Metadata, Outcome, Check, faults, host } from '../../sdk/js/firedrill.js';

export const { describe, run } = scenario({
  describe() {
    const link = host.param('link', 'api-link');
    return Check.declare(new Metadata('connection-churn', '0.1.0',
      'Holds connection closes and resets a share of connections through a link while new connections keep coming; checks failures and recovery.'))
      .param('link', 'string', 'api-link', 'The proxy target')
      .param('close_delay', 'duration', '2s', 'How long each close is held')
      .param('probability', 'float', '0.2', 'The share of connections reset (0 to 1)')
      .param('reset_after', 'duration', '50ms', 'How long a reset connection lives')
      .param('duration', 'duration', '10s', 'How long the churn lasts')
      .param('probe_target', 'string', '', 'The target to probe (default: the link)')
      .param('interval', 'duration', '100ms', 'Time between probes (each a new connection)')
      .param('max_failure_percent', 'float', '100', 'The most failed probes the service may have, in percent')
      .param('recover_within', 'duration', '10s', 'How soon after the churn the probe must be healthy again')
      .need('slow-close', link)
      .need('reset-peer', link);
  },
  run() {
    const link = host.param('link', 'api-link');
    const target = host.param('probe_target', '') || link;
    const duration = host.param('duration', '10s');
    const check = Check.fromParams();
    const slow = faults.slowClose(link, host.param('close_delay', '2s')).direction('both').forDuration(duration).apply();
    const reset = faults.resetPeer(link, host.param('reset_after', '50ms'))
      .probability(Number(host.param('probability', '0.2'))).forDuration(duration).apply();
    const seen = check.watch(target, duration, host.param('interval', '100ms'));
    reset.revert();
    slow.revert();
    const back = check.untilHealthy(target, host.param('recover_within', '10s'));
    const budget = Number(host.param('max_failure_percent', '100'));
    let outcome;
    if (back === undefined) {
      outcome = Outcome.failed(`\`${target}\` was still unhealthy after the churn on \`${link}\``);
    } else if (seen.failurePercent > budget) {
      outcome = Outcome.failed(`${seen.failurePercent.toFixed(0)}% of probes failed during the churn; the budget is ${budget}%`);
    } else {
      outcome = Outcome.passed(`${seen.failurePercent.toFixed(0)}% of ${seen.samples} new connections failed during the churn; healthy ${back.toFixed(0)} ms after`)
        .measure('recovery-time', back, 'ms');
    }
    return outcome.measure('failed-probes', seen.failurePercent, '%');
  },
});
