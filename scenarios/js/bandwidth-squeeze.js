// bandwidth-squeeze: a link's bandwidth drops to a trickle.
//
// For `duration`, the traffic through `link` in `direction` (downstream:
// responses, by default) is limited to `bytes_per_second`. The scenario
// probes `probe_target` (by default the link) with the probe the drill
// chooses and reports the slowest healthy probe and the failed share.
//
// Passes when the slowest healthy probe stays within `max_latency`, failed
// probes within `max_failure_percent`, and the probe is healthy again
// within `recover_within` after. Needs: `bandwidth` on `link`.
import { scenario, Metadata, Outcome, Check, faults, host, nanos } from '../../sdk/js/firedrill.js';

export const { describe, run } = scenario({
  describe() {
    const link = host.param('link', 'api-link');
    return Check.declare(new Metadata('bandwidth-squeeze', '0.1.0',
      'Limits the bandwidth of a link for a while and checks the service\'s latency, failures and recovery.'))
      .param('link', 'string', 'api-link', 'The proxy target to squeeze')
      .param('bytes_per_second', 'integer', '1024', 'The bandwidth left')
      .param('direction', 'string', 'downstream', 'upstream, downstream or both')
      .param('duration', 'duration', '10s', 'How long the squeeze lasts')
      .param('probe_target', 'string', '', 'The target to probe (default: the link)')
      .param('interval', 'duration', '250ms', 'Time between probes')
      .param('max_latency', 'duration', '5s', 'The slowest a healthy probe may be')
      .param('max_failure_percent', 'float', '100', 'The most failed probes the service may have, in percent')
      .param('recover_within', 'duration', '10s', 'How soon after the squeeze the probe must be healthy again')
      .need('bandwidth', link);
  },
  run() {
    const link = host.param('link', 'api-link');
    const target = host.param('probe_target', '') || link;
    const duration = host.param('duration', '10s');
    const rate = host.paramInt('bytes_per_second', 1024);
    const check = Check.fromParams();
    const fault = faults.bandwidth(link, rate).direction(host.param('direction', 'downstream')).forDuration(duration).apply();
    const seen = check.watch(target, duration, host.param('interval', '250ms'));
    fault.revert();
    const back = check.untilHealthy(target, host.param('recover_within', '10s'));
    const maxLatencyMs = Number(nanos(host.param('max_latency', '5s'))) / 1e6;
    const budget = Number(host.param('max_failure_percent', '100'));
    let outcome;
    if (back === undefined) {
      outcome = Outcome.failed(`\`${target}\` was still unhealthy after the squeeze of \`${link}\``);
    } else if (seen.maxLatencyMs > maxLatencyMs) {
      outcome = Outcome.failed(`the slowest probe took ${seen.maxLatencyMs.toFixed(0)} ms at ${rate} B/s; at most ${maxLatencyMs.toFixed(0)} ms`);
    } else if (seen.failurePercent > budget) {
      outcome = Outcome.failed(`${seen.failurePercent.toFixed(0)}% of probes failed at ${rate} B/s; the budget is ${budget}%`);
    } else {
      outcome = Outcome.passed(`\`${target}\` held up at ${rate} B/s: slowest probe ${seen.maxLatencyMs.toFixed(0)} ms, ${seen.failurePercent.toFixed(0)}% failed`)
        .measure('recovery-time', back, 'ms');
    }
    return outcome.measure('slowest-probe', seen.maxLatencyMs, 'ms').measure('failed-probes', seen.failurePercent, '%');
  },
});

