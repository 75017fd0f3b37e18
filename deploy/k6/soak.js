// soak.js: a long, moderate mixed load for leak and latency-drift hunting.
// Of every 20 iterations: 7 check and redeem by token, 3 check and redeem by
// OTP, 3 check and cancel, 2 are refused for a conflicting grant, 2 place a
// hold and abandon it, 1 is refused by another product's live hold, 1 reads
// an abandoned hold back after its expiry and wants "expired", 1 reads a
// granted customer and wants exactly one product. Watch the p99 of each
// endpoint over time (k6 --out) and arbiter's memory.
//
//   k6 run -e DURATION=2h -e RATE=50 deploy/k6/soak.js
//
// Env: BASE_URL, CHECKER_KEY, CARD_KEY, LOAN_KEY, RATE (50), DURATION (30m),
// VUS (20), MAX_VUS (200), P99_MS (25), SUMMARY_JSON, RUN_ID.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
import {
  num, runPrefix, PRODUCTS, other, postCheck, postRedeem, postRedeemOTP, cancelCheck, getCheck, getCustomer,
  p99, summarize, TREND_STATS,
} from './lib.js';

const violations = new Counter('invariant_violations');
const expiries = new Counter('expiries_verified');
const readBacks = new Counter('read_backs');

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 50),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30m',
      preAllocatedVUs: num('VUS', 20),
      maxVUs: num('MAX_VUS', 200),
    },
  },
  thresholds: {
    invariant_violations: ['count==0'],
    // The verifications must have run: a run whose refusals and read-backs
    // never happened proves nothing (expiries need DURATION past the hold TTL).
    'read_backs{kind:refusal}': ['count>0'],
    'read_backs{kind:customer}': ['count>0'],
    'http_req_duration{name:check}': [p99('check', 25)],
    'http_req_duration{name:redeem}': [p99('redeem', 25)],
    'http_req_duration{name:redeem_otp}': [p99('redeem_otp', 25)],
    'http_req_duration{name:cancel}': [p99('cancel', 25)],
    'http_req_duration{name:customer}': [p99('customer', 25)],
    http_req_failed: ['rate<0.001'],
    checks: ['rate==1'],
  },
  summaryTrendStats: TREND_STATS,
};

http.setResponseCallback(http.expectedStatuses(200, 201, 204, 409));

// Per-VU memory (module state is per VU; arrival-rate executors reuse VUs).
const granted = [];
const abandoned = [];

export function setup() {
  violations.add(0);
  return { prefix: runPrefix() };
}

function fresh(data, i) {
  const h = { customer: `${data.prefix}-s${i}`, product: PRODUCTS[i % 2] };
  const r = postCheck(h.customer, h.product);
  if (!check(r, { 'check is 201': (x) => x.status === 201 })) return null;
  h.checkId = r.json('check_id');
  h.token = r.json('token');
  h.otp = r.json('otp');
  h.expires = Date.parse(r.json('expires_at'));
  return h;
}

function keep(list, h) {
  list.push(h);
  if (list.length > 1000) list.shift();
}

export default function (data) {
  // Customer ids come from the test-wide iteration number (unique across
  // VUs); the slot from this VU's own count, because the lists the read-back
  // slots need are per VU and k6 hands iterations to VUs in a fixed rotation:
  // with a test-wide slot one VU would only ever see slot 19 and find its
  // own granted list empty, and the read-backs would never run.
  const i = exec.scenario.iterationInTest;
  const slot = exec.vu.iterationInScenario % 20;
  if (slot < 10) { // check, redeem by token (7) or by OTP (3)
    const h = fresh(data, i);
    if (!h) return;
    const g = slot < 7 ? postRedeem(h.product, h.token) : postRedeemOTP(h.customer, h.product, h.otp);
    if (check(g, { 'redemption is 201': (x) => x.status === 201 })) keep(granted, h);
  } else if (slot < 13) { // check, cancel
    const h = fresh(data, i);
    if (h) check(cancelCheck(h.product, h.checkId), { 'cancel is 204': (x) => x.status === 204 });
  } else if (slot < 15) { // refused: the customer holds the other product
    const g = granted[granted.length - 1];
    if (!g) return;
    check(postCheck(g.customer, other(g.product)), { 'conflicting check is 409': (x) => x.status === 409 });
    readBacks.add(1, { kind: 'refusal' });
  } else if (slot < 17) { // abandon a hold; it expires on its own
    const h = fresh(data, i);
    if (h) keep(abandoned, h);
  } else if (slot === 17) { // refused by a live hold (or, if it just expired, held and cancelled)
    const h = abandoned[abandoned.length - 1];
    if (!h) return;
    const r = postCheck(h.customer, other(h.product));
    check(r, { 'check on a held customer is 409 or 201': (x) => x.status === 409 || x.status === 201 });
    if (r.status === 201) cancelCheck(other(h.product), r.json('check_id'));
  } else if (slot === 18) { // an abandoned hold past its expiry reads "expired"
    if (abandoned.length === 0 || Date.now() < abandoned[0].expires + 1000) return;
    const h = abandoned.shift();
    const r = getCheck(h.checkId);
    if (check(r, { 'expired check is readable': (x) => x.status === 200 })) {
      if (r.json('status') !== 'expired') violations.add(1);
      expiries.add(1);
    }
  } else { // a granted customer holds exactly one product
    const g = granted[granted.length - 1];
    if (!g) return;
    const r = getCustomer(g.customer);
    if (check(r, { 'customer is 200': (x) => x.status === 200 }) && (r.json('products') || []).length !== 1) {
      violations.add(1);
    }
    readBacks.add(1, { kind: 'customer' });
  }
}

export function handleSummary(data) {
  return summarize('soak', data);
}
