// Shared by the arbiter k6 scripts: configuration from environment
// variables, the API calls (each tagged with its endpoint name so
// thresholds apply per endpoint), and handleSummary's output.
// Plain k6 JavaScript: no Node APIs, no npm packages, no remote imports.
import http from 'k6/http';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');

// The product's own service both checks and redeems it (the demo keys of
// `go run ./cmd/arbiter` by default).
export const KEYS = {
  checker: __ENV.CHECKER_KEY || 'demo-checker-key',
  credit_card: __ENV.CARD_KEY || 'demo-card-key',
  personal_loan: __ENV.LOAN_KEY || 'demo-loan-key',
};

export const PRODUCTS = ['credit_card', 'personal_loan'];

// num reads a numeric environment variable, or def when unset.
export function num(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

// runPrefix is a customer id prefix unique to this run (call it in setup:
// init code runs once per VU).
export function runPrefix() {
  return __ENV.RUN_ID || `K${Date.now().toString(36)}`;
}

export function other(product) {
  return product === 'credit_card' ? 'personal_loan' : 'credit_card';
}

function params(key, name) {
  return {
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    tags: { name },
  };
}

export function postCheck(customer, product) {
  return http.post(`${BASE_URL}/v1/checks`,
    JSON.stringify({ customer_id: customer, product }), params(KEYS[product], 'check'));
}

export function redeemRequest(product, token) {
  return ['POST', `${BASE_URL}/v1/redemptions`, JSON.stringify({ token }), params(KEYS[product], 'redeem')];
}

export function postRedeem(product, token) {
  const [, url, body, p] = redeemRequest(product, token);
  return http.post(url, body, p);
}

export function postRedeemOTP(customer, product, otp) {
  return http.post(`${BASE_URL}/v1/redemptions`,
    JSON.stringify({ customer_id: customer, product, otp }), params(KEYS[product], 'redeem_otp'));
}

// cancelCheck cancels as the product's service, which placed the check
// (postCheck): a check may be cancelled by its placer or a redeemer of its
// product, not by any checker.
export function cancelCheck(product, checkId) {
  return http.del(`${BASE_URL}/v1/checks/${checkId}`, null, params(KEYS[product], 'cancel'));
}

export function getCheck(checkId) {
  return http.get(`${BASE_URL}/v1/checks/${checkId}`, params(KEYS.checker, 'get_check'));
}

export function customerRequest(customer) {
  return ['GET', `${BASE_URL}/v1/customers/${customer}`, null, params(KEYS.checker, 'customer')];
}

export function getCustomer(customer) {
  const [, url, , p] = customerRequest(customer);
  return http.get(url, p);
}

// p99 of every endpoint, overridable per endpoint: P99_MS_CHECK, ...
export function p99(endpoint, def) {
  return `p(99)<${num(`P99_MS_${endpoint.toUpperCase()}`, num('P99_MS', def))}`;
}

export const TREND_STATS = ['avg', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max', 'count'];

function fmt(v) {
  return v === undefined ? '-' : Number(v).toFixed(2);
}

function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

// summarize is every script's handleSummary: the full k6 summary as JSON
// (SUMMARY_JSON, default summary-<scenario>.json) and a short text table
// of the per-endpoint latencies and the thresholds on stdout.
export function summarize(scenario, data) {
  const lines = [`arbiter k6 ${scenario}: ${BASE_URL}`, ''];
  lines.push(`${pad('endpoint', 12)} ${pad('count', 8)} ${pad('med ms', 8)} ${pad('p90 ms', 8)} ${pad('p99 ms', 8)} ${pad('p99.9 ms', 9)} max ms`);
  for (const name of Object.keys(data.metrics).sort()) {
    const m = /^http_req_duration\{name:(.+)\}$/.exec(name);
    if (!m) continue;
    const v = data.metrics[name].values;
    lines.push(`${pad(m[1], 12)} ${pad(v.count === undefined ? '-' : v.count, 8)} ${pad(fmt(v.med), 8)} ${pad(fmt(v['p(90)']), 8)} ${pad(fmt(v['p(99)']), 8)} ${pad(fmt(v['p(99.9)']), 9)} ${fmt(v.max)}`);
  }
  lines.push('');
  let failed = 0;
  for (const name of Object.keys(data.metrics).sort()) {
    const th = data.metrics[name].thresholds;
    if (!th) continue;
    for (const expr of Object.keys(th)) {
      const ok = th[expr].ok;
      if (!ok) failed++;
      lines.push(`${ok ? 'ok  ' : 'FAIL'} ${name} ${expr}`);
    }
  }
  const iters = data.metrics.iterations ? data.metrics.iterations.values.count : 0;
  const dropped = data.metrics.dropped_iterations ? data.metrics.dropped_iterations.values.count : 0;
  lines.push('', `iterations ${iters}, dropped ${dropped}, thresholds failed ${failed}`, '');
  const out = { stdout: lines.join('\n') };
  out[__ENV.SUMMARY_JSON || `summary-${scenario}.json`] = JSON.stringify(data, null, 2);
  return out;
}
