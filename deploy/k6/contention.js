// contention.js: many VUs race card and loan checks and redemptions over a
// small pool of customers (a fresh pool every GEN_MS, so races go on all
// run long). A quarter of the winners redeem twice at once, as a retrying
// product service would (one 201, one 200 replay). The teardown reads every
// customer back; one holding two products (both, or two of one) counts in
// invariant_violations, whose threshold fails the run.
//
//   go run ./cmd/arbiter &   k6 run deploy/k6/contention.js
//
// Env: BASE_URL, CHECKER_KEY, CARD_KEY, LOAN_KEY, RATE (200), DURATION
// (30s), VUS (100), MAX_VUS (500), POOL (20 customers), GEN_MS (2000),
// P99_MS (50), SUMMARY_JSON, RUN_ID.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { num, runPrefix, PRODUCTS, postCheck, redeemRequest, customerRequest, p99, summarize, TREND_STATS } from './lib.js';

const POOL = num('POOL', 20);
const GEN_MS = num('GEN_MS', 2000);

const violations = new Counter('invariant_violations');
const grants = new Counter('grants');

export const options = {
  scenarios: {
    contention: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: num('VUS', 100),
      maxVUs: num('MAX_VUS', 500),
    },
  },
  thresholds: {
    invariant_violations: ['count==0'],
    'http_req_duration{name:check}': [p99('check', 50)],
    'http_req_duration{name:redeem}': [p99('redeem', 50)],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
  },
  teardownTimeout: '5m',
  summaryTrendStats: TREND_STATS,
};

http.setResponseCallback(http.expectedStatuses(200, 201, 409));

export function setup() {
  return { prefix: runPrefix(), start: Date.now() };
}

function customerOf(data, gen, k) {
  return `${data.prefix}-g${gen}-${k}`;
}

export default function (data) {
  const gen = Math.floor((Date.now() - data.start) / GEN_MS);
  const customer = customerOf(data, gen, Math.floor(Math.random() * POOL));
  const product = PRODUCTS[Math.floor(Math.random() * 2)];
  const r = postCheck(customer, product);
  check(r, { 'check is 201 or 409': (x) => x.status === 201 || x.status === 409 });
  if (r.status !== 201) return;
  const token = r.json('token');
  const n = Math.random() < 0.25 ? 2 : 1;
  const reqs = [];
  for (let k = 0; k < n; k++) reqs.push(redeemRequest(product, token));
  const res = http.batch(reqs); // concurrent when n is 2
  let created = 0;
  for (const g of res) {
    check(g, { 'redemption is 201 or a 200 replay': (x) => x.status === 201 || x.status === 200 });
    if (g.status === 201) created++;
  }
  grants.add(created);
  if (created > 1) violations.add(created - 1); // two 201s for one hold
}

// teardown reads back every customer of every generation.
export function teardown(data) {
  violations.add(0); // a sample, so the threshold always has data
  const gens = Math.floor((Date.now() - data.start) / GEN_MS) + 1;
  const ids = [];
  for (let g = 0; g < gens; g++) for (let k = 0; k < POOL; k++) ids.push(customerOf(data, g, k));
  for (let from = 0; from < ids.length; from += 20) {
    const chunk = ids.slice(from, from + 20);
    const res = http.batch(chunk.map(customerRequest));
    res.forEach((r, k) => {
      if (!check(r, { 'customer read back': (x) => x.status === 200 })) {
        violations.add(1);
        console.error(`customer ${chunk[k]}: read back failed: ${r.status}`);
        return;
      }
      const products = r.json('products') || [];
      if (products.length > 1) {
        violations.add(1);
        console.error(`VIOLATION customer ${chunk[k]} holds ${products.map((p) => p.product).join(', ')}`);
      }
    });
  }
}

export function handleSummary(data) {
  return summarize('contention', data);
}
