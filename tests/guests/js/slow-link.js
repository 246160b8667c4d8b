// The README's slow-link scenario, written in JavaScript against
// firedrill's WIT (no SDK), built by componentize-js with its default
// flags, so it imports wasi:http like any default build. With
// `fetch = "URL"` it first tries a direct request, which the engine denies:
// the scenario reports what `fetch` threw.
import { delay } from 'firedrill:scenario/faults@0.1.1';
import { http } from 'firedrill:scenario/probes@0.1.1';
import { log, param } from 'firedrill:scenario/host@0.1.1';

export function describe() {
  const link = param('link') ?? 'api-link';
  return {
    name: 'slow-link-js',
    version: '0.1.0',
    description: 'Adds latency to a link and probes through it.',
    params: [
      { name: 'link', ty: 'string', default: 'api-link', doc: 'The proxy to slow down', secret: false },
      { name: 'latency-ms', ty: 'integer', default: '200', doc: 'Latency to add, ms', secret: false },
      { name: 'fetch', ty: 'string', default: '', doc: 'A URL to fetch directly first', secret: false },
    ],
    needs: [{ kind: 'delay', target: link }],
  };
}

export async function run() {
  const link = param('link') ?? 'api-link';
  const url = param('fetch') ?? '';
  let fetched = '';
  if (url !== '') {
    try {
      const r = await fetch(url);
      fetched = `fetch answered ${r.status}`;
    } catch (e) {
      fetched = `fetch failed: ${e}`;
    }
    log('warn', fetched);
  }
  const latency = BigInt(param('latency-ms') ?? '200') * 1000000n;
  const fault = delay(link, latency, 0n, 'both', {});
  const r = http(link, { method: 'GET', path: '/health', headers: [], body: new Uint8Array(), timeout: undefined });
  fault.revert();
  return {
    verdict: r.status < 400 ? 'pass' : 'fail',
    summary: `status ${r.status} under latency${fetched ? '; ' + fetched : ''}`,
    findings: [],
    measurements: [{ name: 'latency', value: Number(r.latency) / 1e6, unit: 'ms' }],
  };
}
