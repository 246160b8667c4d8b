// The README's slow-link scenario in JavaScript, with firedrill's JS SDK,
// built by componentize-js with its default flags (so it imports wasi:http,
// as any default build does). `mode` makes it fail on purpose, as the
// engine's tests need: `error` throws a FiredrillError, `exception` an
// Error it does not catch, `memory` allocates past the memory limit, and
// `fetch` first tries a direct request, which the engine denies.
import { scenario, Metadata, Outcome, FiredrillError, faults, probes, host } from '../../../sdk/js/firedrill.js';

export const { describe, run } = scenario({
  describe() {
    const link = host.param('link', 'api-link');
    return new Metadata('slow-link-js', '0.1.0', 'Adds latency to a link and probes through it.')
      .param('link', 'string', 'api-link', 'The proxy to slow down')
      .param('latency', 'duration', '200ms', 'Latency to add')
      .param('mode', 'string', 'pass', 'pass, error, exception, memory or fetch')
      .param('url', 'string', '', 'What mode=fetch fetches')
      .need('delay', link);
  },
  async run() {
    const link = host.param('link', 'api-link');
    const mode = host.param('mode', 'pass');
    if (mode === 'error') throw new FiredrillError('invalid-argument', 'mode=error asks for an error');
    if (mode === 'exception') throw new RangeError('an exception the scenario did not catch');
    if (mode === 'memory') {
      const hog = [];
      for (let i = 0; i < 4096; i++) hog.push(new Uint8Array(1 << 20).fill(1));
      return Outcome.passed(`allocated ${hog.length} MiB`);
    }
    let fetched = '';
    if (mode === 'fetch') {
      try {
        const r = await fetch(host.param('url', ''));
        fetched = `; fetch answered ${r.status}`;
      } catch (e) {
        fetched = `; fetch failed: ${e}`;
      }
      host.warn(fetched);
    }
    const latency = host.param('latency', '200ms');
    host.info(`slowing ${link} by ${latency}`);
    const fault = faults.delay(link, latency).apply();
    const response = probes.get(link, '/health');
    fault.revert();
    const summary = `status ${response.status} under latency${fetched}`;
    const outcome = response.ok ? Outcome.passed(summary) : Outcome.failed(summary);
    return outcome.measure('latency', response.latencyMs, 'ms');
  },
});
