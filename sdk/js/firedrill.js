// firedrill's JavaScript SDK: write a chaos scenario as two functions,
// build it into a WebAssembly component with componentize-js.
//
//   import { scenario, Metadata, Outcome, faults, probes, host } from './firedrill/sdk/js/firedrill.js';
//
//   export const { describe, run } = scenario({
//     describe() {
//       const link = host.param('link', 'api-link');
//       return new Metadata('slow-link', '0.1.0', 'Adds latency to a link and probes through it.')
//         .param('link', 'string', 'api-link', 'The proxy to slow down')
//         .param('latency', 'duration', '200ms', 'Latency to add')
//         .need('delay', link);
//     },
//     run() {
//       const link = host.param('link', 'api-link');
//       const fault = faults.delay(link, host.param('latency', '200ms')).apply();
//       const response = probes.get(link, '/health');
//       fault.revert();
//       const outcome = response.ok ? Outcome.passed('healthy under latency')
//                                   : Outcome.failed(`status ${response.status} under latency`);
//       return outcome.measure('latency', response.latencyMs, 'ms');
//     },
//   });
//
// Build (the SDK and firedrill's WIT come from a firedrill checkout; the
// default flags are fine: `fetch` links, and every request is denied):
//
//   componentize-js scenario.js --wit firedrill/wit -n scenario -o scenario.wasm
//
// The engine's calls that fail throw `FiredrillError` (`.kind` is denied,
// unknown-target, invalid-argument, unsupported, failed or halted); let it
// propagate and the run ends with that error. Any other exception ends the
// run with its stack in the run's timeline. `run` may be async. Durations
// are strings such as '250ms', '2s' or '1m30s', or seconds as a number.

import * as f from 'firedrill:scenario/faults@0.1.1';
import * as p from 'firedrill:scenario/probes@0.1.1';
import * as h from 'firedrill:scenario/host@0.1.1';

const KINDS = ['denied', 'unknown-target', 'invalid-argument', 'unsupported', 'failed', 'halted'];

/** A host call failed, or the scenario gives up. */
export class FiredrillError extends Error {
  constructor(kind, message = '') {
    if (!KINDS.includes(kind)) throw new TypeError(`error kind '${kind}' is not one of ${KINDS.join(', ')}`);
    super(message ? `${kind}: ${message}` : kind);
    this.kind = kind;
    this.detail = message;
  }
  toVariant() {
    return this.kind === 'halted' ? { tag: 'halted' } : { tag: this.kind, val: this.detail };
  }
}

function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const v = e && e.payload;
    if (v && KINDS.includes(v.tag)) throw new FiredrillError(v.tag, v.val ?? '');
    throw e;
  }
}

const UNITS = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Nanoseconds (a BigInt) in '250ms', '2s', '1m30s', or in seconds. */
export function nanos(d) {
  if (typeof d === 'bigint') return d;
  if (typeof d === 'number') return BigInt(Math.round(d * 1e9));
  const s = String(d).trim();
  const re = /(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let m;
  while (re.lastIndex < s.length && (m = re.exec(s))) total += Number(m[1]) * UNITS[m[2]];
  if (re.lastIndex !== s.length || s.length === 0) {
    throw new FiredrillError('invalid-argument', `'${d}' is not a duration like '250ms' or '2s'`);
  }
  return BigInt(Math.round(total));
}

const TYPES = ['string', 'integer', 'float', 'boolean', 'duration'];

/** What a scenario is and needs. */
export class Metadata {
  constructor(name, version, description) {
    Object.assign(this, { name, version, description, params: [], needs: [] });
  }
  /** Declare a parameter; a null default makes it required. */
  param(name, ty, defaultValue, doc, { secret = false } = {}) {
    if (!TYPES.includes(ty)) throw new TypeError(`parameter '${name}': type '${ty}' is not one of ${TYPES.join(', ')}`);
    this.params.push({ name, ty, default: defaultValue ?? undefined, doc, secret });
    return this;
  }
  /** Declare a fault kind (`delay`, `fail-auth`, `kill`…) on a target. */
  need(kind, target) {
    this.needs.push({ kind, target });
    return this;
  }
}

/** What a run concluded. */
export class Outcome {
  constructor(passed, summary) {
    Object.assign(this, { passed, summary, findings: [], measurements: [] });
  }
  static passed(summary) { return new Outcome(true, summary); }
  static failed(summary) { return new Outcome(false, summary); }
  /** Record a number, e.g. measure('recovery-time', 812, 'ms'). */
  measure(name, value, unit) { this.measurements.push({ name, value: Number(value), unit }); return this; }
  /** Record something noticed: 'info', 'warning' or 'critical'. */
  finding(severity, title, detail = '') { this.findings.push({ severity, title, detail }); return this; }
  toRecord() {
    return { verdict: this.passed ? 'pass' : 'fail', summary: this.summary, findings: this.findings, measurements: this.measurements };
  }
}

/** The `describe` and `run` exports of a scenario. */
export function scenario({ describe, run }) {
  return {
    describe() {
      const m = describe();
      if (!(m instanceof Metadata)) throw new TypeError('describe() must return a Metadata');
      return { name: m.name, version: m.version, description: m.description, params: m.params, needs: m.needs };
    },
    async run() {
      let o;
      try {
        o = await run();
      } catch (e) {
        if (e instanceof FiredrillError) throw e.toVariant();
        console.error(e && e.stack ? `Uncaught ${e.stack}` : `Uncaught ${e}`);
        throw e;
      }
      if (!(o instanceof Outcome)) throw new TypeError('run() must return an Outcome');
      return o.toRecord();
    },
  };
}

class Fault {
  constructor(handle) { this.handle = handle; }
  get id() { return this.handle.id(); }
  get active() { return this.handle.active(); }
  /** Undo it now; reverting twice is harmless. */
  revert() { call(() => this.handle.revert()); }
}

class Builder {
  constructor(target, apply) {
    Object.assign(this, { target, applyFn: apply, opts: {}, dir: 'downstream' });
  }
  /** Revert it by itself after `d`. */
  forDuration(d) { this.opts.duration = nanos(d); return this; }
  /** Apply it to this fraction of requests or connections (0..1). */
  probability(p) { this.opts.probability = p; return this; }
  /** On HTTP proxies: only requests with this method, path prefix or header ([name, value]). */
  matching({ method, path, header } = {}) { this.opts.requestMatch = { method, path, header }; return this; }
  /** 'upstream', 'downstream' (the default: responses) or 'both'. */
  direction(d) { this.dir = d; return this; }
  apply() { return new Fault(call(() => this.applyFn(this))); }
}

class DelayBuilder extends Builder {
  constructor(target, latency) {
    super(target, (b) => f.delay(b.target, b.latency, b.jitterNs, b.dir, b.opts));
    this.latency = nanos(latency);
    this.jitterNs = 0n;
  }
  jitter(j) { this.jitterNs = nanos(j); return this; }
}

const link = (target, fault) => new Builder(target, (b) => f.link(b.target, fault, b.dir, b.opts));
const stress = (target, load) => new Builder(target, (b) => f.stress(b.target, load, b.opts));

/** Faults: builders to `apply()`; the returned fault can be `revert()`ed. */
export const faults = {
  delay: (target, latency) => new DelayBuilder(target, latency),
  pause: (target) => new Builder(target, (b) => f.pause(b.target, b.opts)),
  failAuth: (target, mode = 'reject', status) => new Builder(target, (b) => f.failAuth(b.target, mode, status, b.opts)),
  httpError: (target, status, body, headers = []) => new Builder(target, (b) => f.httpError(b.target, status, body, headers, b.opts)),
  httpAbort: (target, at = 'request', reset = false) => new Builder(target, (b) => f.httpAbort(b.target, at, reset, b.opts)),
  httpModify: (target, { status, setHeaders = [], removeHeaders = [], body } = {}) =>
    new Builder(target, (b) => f.httpModify(b.target, { status, setHeaders, removeHeaders, body }, b.opts)),
  connectDelay: (target, latency) => link(target, { tag: 'connect-delay', val: [nanos(latency), 0n] }),
  bandwidth: (target, bytesPerSecond) => link(target, { tag: 'bandwidth', val: BigInt(bytesPerSecond) }),
  blackhole: (target) => link(target, { tag: 'blackhole' }),
  refuse: (target) => link(target, { tag: 'refuse' }),
  resetPeer: (target, after) => link(target, { tag: 'reset-peer', val: nanos(after) }),
  timeout: (target, after) => link(target, { tag: 'timeout', val: nanos(after) }),
  slowClose: (target, delay) => link(target, { tag: 'slow-close', val: nanos(delay) }),
  limitData: (target, bytes) => link(target, { tag: 'limit-data', val: BigInt(bytes) }),
  cpuStress: (target, cores, percent) => stress(target, { tag: 'cpu', val: [cores, percent] }),
  memoryStress: (target, bytes) => stress(target, { tag: 'memory', val: BigInt(bytes) }),
  diskFill: (target, bytes) => stress(target, { tag: 'disk', val: BigInt(bytes) }),
  /** Send a signal ('kill', 'term', …) to a process target's whole tree. */
  kill: (target, signal = 'kill') => call(f.kill, target, signal.toLowerCase().replace(/^sig/, '')),
  restart: (target) => call(f.restart, target),
};

class Response {
  constructor(r) {
    Object.assign(this, { status: r.status, headers: r.headers, body: r.body, latencyMs: Number(r.latency) / 1e6 });
  }
  /** A 2xx or 3xx status. */
  get ok() { return this.status >= 200 && this.status < 400; }
  header(name) {
    const found = this.headers.find(([k]) => k.toLowerCase() === name.toLowerCase());
    return found ? found[1] : undefined;
  }
  get text() { return new TextDecoder().decode(this.body); }
}

/** Probes: what the scenario sees of its targets, recorded in the timeline. */
export const probes = {
  http(target, method, path, { headers = [], body = new Uint8Array(), timeout } = {}) {
    const request = { method, path, headers, body, timeout: timeout === undefined ? undefined : nanos(timeout) };
    return new Response(call(p.http, target, request));
  },
  get(target, path, options) { return probes.http(target, 'GET', path, options); },
  /** Open a TCP connection; the milliseconds it took. */
  tcpConnect(target, timeout) { return Number(call(p.tcpConnect, target, timeout === undefined ? undefined : nanos(timeout))) / 1e6; },
  /** Send `send`, wait for `expect` in the answer (strings or bytes); the milliseconds it took. */
  tcpExchange(target, send, expect, timeout) {
    const bytes = (v) => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
    return Number(call(p.tcpExchange, target, bytes(send), bytes(expect), timeout === undefined ? undefined : nanos(timeout))) / 1e6;
  },
  processAlive(target) { return call(p.processAlive, target); },
};

/** Host services: parameters, logging, time, randomness and marks. */
export const host = {
  /** A parameter's value (defaults applied by the engine), else `fallback`. */
  param(name, fallback) { return h.param(name) ?? fallback; },
  paramInt(name, fallback) {
    const v = h.param(name);
    if (v === undefined) return fallback;
    const n = Number.parseInt(v, 10);
    if (Number.isNaN(n)) throw new FiredrillError('invalid-argument', `parameter '${name}' must be an integer, got '${v}'`);
    return n;
  },
  debug: (message) => h.log('debug', message),
  info: (message) => h.log('info', message),
  warn: (message) => h.log('warn', message),
  error: (message) => h.log('error', message),
  /** Sleep; throws FiredrillError('halted') if the run is halted meanwhile. */
  sleep: (d) => call(h.sleep, nanos(d)),
  /** Milliseconds since the run started. */
  nowMs: () => Number(h.now()) / 1e6,
  /** A 64-bit BigInt from the run's seeded generator (replays repeat it). */
  random: () => h.random(),
  /** A mark in the timeline. */
  event: (name, detail = '') => h.event(name, detail),
};

/**
 * A health probe the drill chooses, not the scenario's code, so one
 * scenario works on any service: probe = 'http' (GET `path`), 'tcp'
 * (connect) or 'exchange' (`send`, then `expect` in the answer).
 * `Check.declare(metadata)` adds those parameters; `Check.fromParams()`
 * reads them.
 */
export class Check {
  constructor({ kind = 'http', path = '/health', send = '', expect = '', timeout = '2s' } = {}) {
    if (!['http', 'tcp', 'exchange'].includes(kind)) {
      throw new FiredrillError('invalid-argument', `parameter \`probe\` is '${kind}'; expected http, tcp or exchange`);
    }
    Object.assign(this, { kind, path, send, expect, timeout });
  }
  static declare(metadata) {
    return metadata
      .param('probe', 'string', 'http', 'How to tell the service is healthy: http, tcp or exchange')
      .param('path', 'string', '/health', 'probe = http: the path to GET')
      .param('send', 'string', '', 'probe = exchange: what to send')
      .param('expect', 'string', '', 'probe = exchange: what the answer must contain')
      .param('probe_timeout', 'duration', '2s', 'How long one probe may take');
  }
  static fromParams() {
    return new Check({
      kind: host.param('probe', 'http'),
      path: host.param('path', '/health'),
      send: host.param('send', ''),
      expect: host.param('expect', ''),
      timeout: host.param('probe_timeout', '2s'),
    });
  }
  /** [true, latencyMs] when healthy, [false, why] when not. */
  run(target) {
    try {
      if (this.kind === 'http') {
        const r = probes.http(target, 'GET', this.path, { timeout: this.timeout });
        return r.status < 400 ? [true, r.latencyMs] : [false, `status ${r.status}`];
      }
      if (this.kind === 'tcp') return [true, probes.tcpConnect(target, this.timeout)];
      return [true, probes.tcpExchange(target, this.send, this.expect, this.timeout)];
    } catch (e) {
      if (e instanceof FiredrillError && e.kind === 'failed') return [false, e.detail];
      throw e;
    }
  }
  /** Probe every `interval` for `duration`. */
  watch(target, duration, interval) {
    const end = host.nowMs() + Number(nanos(duration)) / 1e6;
    const w = { samples: 0, failures: 0, maxLatencyMs: 0, firstFailure: undefined };
    while (host.nowMs() < end) {
      w.samples += 1;
      const [ok, detail] = this.run(target);
      if (ok) w.maxLatencyMs = Math.max(w.maxLatencyMs, detail);
      else {
        w.failures += 1;
        if (w.firstFailure === undefined) {
          w.firstFailure = detail;
          host.event('unhealthy', detail);
        }
      }
      host.sleep(interval);
    }
    w.failurePercent = (w.failures * 100) / Math.max(w.samples, 1);
    return w;
  }
  /** Milliseconds until `target` is healthy, or undefined past `within`. */
  untilHealthy(target, within) {
    const start = host.nowMs();
    const limit = Number(nanos(within)) / 1e6;
    for (;;) {
      const [ok] = this.run(target);
      if (ok) return host.nowMs() - start;
      if (host.nowMs() - start >= limit) return undefined;
      host.sleep(0.1);
    }
  }
}
