// checks.js: the open-model check scenario. Each iteration checks a
// customer never seen before and redeems the approval token it gets
// (201, then 201). With REFUSED=0.5, half the iterations instead check a
// personal loan for a customer who already holds a credit card (409).
//
//   k6 run deploy/k6/checks.js
//   k6 run -e BASE_URL=https://arbiter.example -e CARD_KEY=... -e LOAN_KEY=... -e RATE=500 -e DURATION=5m deploy/k6/checks.js
//
// Env: BASE_URL, CHECKER_KEY, CARD_KEY, LOAN_KEY, RATE (iterations/s, 100),
// DURATION (1m), VUS (50), MAX_VUS (500), REFUSED (0), POOL (200: refused
// customers set up first), P99_MS (10; per endpoint P99_MS_CHECK,
// P99_MS_REDEEM), SUMMARY_JSON, RUN_ID.
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { num, runPrefix, postCheck, postRedeem, p99, summarize, TREND_STATS } from './lib.js';

const REFUSED = num('REFUSED', 0);

export const options = {
  scenarios: {
    checks: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 100),
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: num('VUS', 50),
      maxVUs: num('MAX_VUS', 500),
    },
  },
  thresholds: {
    'http_req_duration{name:check}': [p99('check', 10)],
    'http_req_duration{name:redeem}': [p99('redeem', 10)],
    http_req_failed: ['rate<0.001'],
    checks: ['rate==1'],
  },
  setupTimeout: '5m',
  summaryTrendStats: TREND_STATS,
};

// Refusals are answers, not failures.
http.setResponseCallback(http.expectedStatuses(200, 201, 409));

// setup grants a credit card to POOL customers when refusals are asked for.
export function setup() {
  const prefix = runPrefix();
  const pool = [];
  if (REFUSED > 0) {
    for (let k = 0; k < num('POOL', 200); k++) {
      const id = `${prefix}-r${k}`;
      const r = postCheck(id, 'credit_card');
      if (r.status !== 201 || postRedeem('credit_card', r.json('token')).status !== 201) {
        throw new Error(`setup: could not grant a credit card to ${id}: ${r.status} ${r.body}`);
      }
      pool.push(id);
    }
  }
  return { prefix, pool };
}

export default function (data) {
  const i = exec.scenario.iterationInTest;
  // i*61 mod 100 visits every residue once per 100 iterations: an exact, even share.
  if (data.pool.length > 0 && (i * 61) % 100 < Math.round(REFUSED * 100)) {
    const r = postCheck(data.pool[i % data.pool.length], 'personal_loan');
    check(r, { 'refused check is 409 conflicting_product': (x) => x.status === 409 && x.json('reason') === 'conflicting_product' });
    return;
  }
  const product = i % 2 === 0 ? 'credit_card' : 'personal_loan';
  const r = postCheck(`${data.prefix}-c${i}`, product);
  if (!check(r, { 'check is 201 held': (x) => x.status === 201 && x.json('status') === 'held' })) return;
  const g = postRedeem(product, r.json('token'));
  check(g, { 'redemption is 201': (x) => x.status === 201 });
}

export function handleSummary(data) {
  return summarize('checks', data);
}
