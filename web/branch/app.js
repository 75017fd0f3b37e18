// arbiter branch UI. Plain script, no framework and no build step. It talks
// to arbiter's v1 API with the session cookie; the CSRF token goes in a
// header on every state-changing call. Text from the server is only ever
// set with textContent, never parsed as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const OTP_PERIOD_MS = 30000;
  const POLL_MS = 1000; // a hold's end shows within two seconds

  const state = {
    csrf: null,
    user: null,
    products: [],
    customer: null,   // id being shown
    view: null,       // last GET /v1/customers/{id}
    check: null,      // the check this page placed and watches
    own: new Set(),   // ids of checks the server showed this agent the code of: the agent's own
    eligibility: null, // {customer, rows}: the last dry run, kept to reword when a check proves ours
    cases: [],        // open cases, GET /v1/cases
    caseSeen: null,   // {customer, note}: the open case the dry run refused with
    pollTimer: 0,
    customerTimer: 0,
    gen: 0,           // bumps on every customer change; stale answers are dropped
    clockOffset: 0,   // server time minus browser time, ms
  };

  // ---- API -------------------------------------------------------------

  class APIError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || 'Request failed (' + status + ')');
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, url, body, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    Object.assign(headers, opts.headers || {});
    let res;
    try {
      res = await fetch(url, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new APIError(0, { title: 'Network error', detail: 'arbiter could not be reached. Check the connection and try again.' });
    }
    syncClock(res);
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new APIError(res.status, data || { title: res.statusText });
      if (res.status === 401 && !opts.signIn) sessionEnded();
      throw err;
    }
    return data;
  }

  // Countdowns use the server's clock: the Date header gives it to within a
  // second, which is all a countdown in seconds needs.
  function syncClock(res) {
    const d = Date.parse(res.headers.get('Date') || '');
    if (isNaN(d)) return;
    const off = d + 500 - Date.now();
    if (Math.abs(off - state.clockOffset) > 1500) state.clockOffset = off;
  }
  const now = () => Date.now() + state.clockOffset;

  // ---- words -----------------------------------------------------------

  function title(product) {
    const p = state.products.find((x) => x.id === product);
    if (p) return p.title;
    const s = String(product || '').replace(/_/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
  }
  const fmtTime = (t) => new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  const fmtDate = (t) => new Date(t).toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric' });
  function fmtWhen(t) {
    const d = new Date(t);
    const today = new Date(now());
    return d.toDateString() === today.toDateString() ? fmtTime(t) : fmtDate(t) + ' ' + fmtTime(t);
  }
  function fmtLeft(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }
  function who(actor, agent) {
    return agent ? agent + ' (' + actor + ')' : actor;
  }
  const reasonWords = {
    hold_exists: 'another check was in progress',
    conflicting_product: 'the customer holds a product that excludes it',
    already_holds_product: 'the customer already holds it',
    case_open: 'the customer has an open case to resolve first',
    otp_locked: 'too many wrong codes',
    cancelled: 'cancelled',
  };
  // reasonText words a reason code: in the words above, else the code
  // itself made readable (a reason this page does not know yet).
  function reasonText(reason) {
    return reasonWords[reason] || String(reason || 'refused').replace(/_/g, ' ');
  }
  function eventText(e) {
    const t = title(e.product);
    const by = who(e.actor, e.agent);
    switch (e.type) {
      case 'checked': return by + ' requested a ' + t + ' check: hold placed';
      case 'refused':
        // A refused redemption names its check; a refused check has none.
        return by + (e.check_id ? ' tried to redeem the ' + t + ' check' : ' requested a ' + t + ' check') +
          ': refused, ' + reasonText(e.reason);
      case 'redeemed': return by + ' redeemed the ' + t + ' check: the customer now holds a ' + t;
      case 'otp_failed': return by + ' entered a wrong code for the ' + t + ' check';
      case 'cancelled':
        return e.reason && e.reason !== 'cancelled'
          ? 'The ' + t + ' check ended: ' + reasonText(e.reason)
          : by + ' cancelled the ' + t + ' check';
      case 'expired': return 'The ' + t + ' check expired unused';
      case 'released': return by + ' released the customer\u2019s ' + t;
      case 'imported': return by + ' recorded an existing ' + t;
      case 'case_opened': return 'Reconciliation opened a case: ' + (e.note || 'the customer holds products that exclude each other');
      case 'case_resolved': return by + ' resolved the case: ' + (e.note || '');
      default: return by + ': ' + e.type + (e.product ? ' ' + t : '');
    }
  }

  function el(tag, props, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'text') n.textContent = v;
      else if (k === 'class') n.className = v;
      else if (k === 'dataset') Object.assign(n.dataset, v);
      else n.setAttribute(k, v);
    }
    for (const c of children) if (c != null) n.append(c);
    return n;
  }

  // ---- views -----------------------------------------------------------

  function show(view) {
    $('loading').hidden = true;
    $('signin-view').hidden = view !== 'signin';
    $('work-view').hidden = view !== 'work';
    $('who').hidden = view !== 'work';
  }

  function showSignIn(note) {
    stopWatching();
    state.csrf = null; state.user = null; state.customer = null; state.view = null;
    state.own.clear(); state.eligibility = null;
    $('customer-view').hidden = true;
    $('outcome').replaceChildren();
    $('signin-note').textContent = note || '';
    $('signin-note').hidden = !note;
    $('signin-error').textContent = '';
    $('password').value = '';
    show('signin');
    $('username').focus();
  }

  function sessionEnded() {
    if (state.user) showSignIn('Your session ended. Sign in again to continue.');
  }

  function startSession(s) {
    state.csrf = s.csrf_token;
    state.user = s.username;
    state.products = s.products || [];
    $('who-name').replaceChildren(el('span', { class: 'who-prefix', text: 'Signed in as ' }),
      s.username + (s.branch ? ' \u00b7 ' + s.branch : ''));
    renderChoices();
    show('work');
    $('customer-id').focus();
    loadCases();
  }

  // loadCases shows the open cases (GET /v1/cases): double holdings that
  // reconciliation found, in the server's plain words, each with a way to
  // look the customer up.
  async function loadCases() {
    let list = [];
    try {
      list = (await api('GET', '/v1/cases')).cases || [];
    } catch (e) {
      list = []; // reconciliation not configured, or arbiter busy: no list
    }
    state.cases = list;
    const ul = $('case-list');
    ul.replaceChildren();
    for (const c of list) {
      const btn = el('button', { type: 'button', class: 'quiet', text: 'Look up ' + c.customer_id });
      btn.addEventListener('click', () => {
        $('customer-id').value = c.customer_id;
        $('lookup-form').requestSubmit();
      });
      ul.append(el('li', { class: 'case', dataset: { customer: c.customer_id } },
        el('span', { class: 'case-detail', text: c.detail }), ' ', btn));
    }
    $('cases').hidden = list.length === 0;
    renderCustomerCase();
  }

  // renderCustomerCase shows the customer's open case: from the list of
  // cases, or, when the list lacks it (it was not readable, or is longer
  // than one page), from the case_open refusal of the dry run.
  function renderCustomerCase() {
    const box = $('customer-case');
    const c = (state.cases || []).find((x) => x.customer_id === state.customer);
    const seen = state.caseSeen && state.caseSeen.customer === state.customer ? state.caseSeen.note : '';
    const detail = c ? c.detail : seen;
    box.textContent = detail ? 'Open case: ' + detail : '';
    box.hidden = !detail;
  }

  function renderChoices() {
    const box = $('product-choices');
    box.replaceChildren();
    state.products.forEach((p, i) => {
      const id = 'product-' + p.id;
      const input = el('input', { type: 'radio', name: 'product', id, value: p.id });
      if (i === 0) input.checked = true;
      const mins = Math.round(p.hold_ttl_seconds / 60);
      const label = el('label', { for: id }, p.title, el('small', { text: 'hold ' + mins + ' min' }));
      box.append(el('div', { class: 'choice' }, input, label));
    });
  }

  // ---- sign in / out ---------------------------------------------------

  async function signIn(ev) {
    ev.preventDefault();
    const username = $('username').value.trim();
    const password = $('password').value;
    const errBox = $('signin-error');
    if (!username || !password) {
      errBox.textContent = 'Enter your username and password.';
      (username ? $('password') : $('username')).focus();
      return;
    }
    const btn = $('signin-submit');
    btn.disabled = true;
    errBox.textContent = '';
    try {
      const s = await api('POST', '/branch/session', { username, password }, { signIn: true });
      $('password').value = '';
      $('signin-note').hidden = true;
      startSession(s);
    } catch (e) {
      errBox.textContent = e.message;
      $('password').value = '';
      $('password').focus();
    } finally {
      btn.disabled = false;
    }
  }

  async function signOut() {
    try { await api('DELETE', '/branch/session'); } catch (e) { /* signed out either way */ }
    showSignIn('You are signed out.');
  }

  // ---- customer --------------------------------------------------------

  async function lookUp(ev) {
    ev.preventDefault();
    const typed = $('customer-id').value.trim();
    const errBox = $('lookup-error');
    errBox.textContent = '';
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(typed)) {
      errBox.textContent = 'A customer id is letters, digits and _ . : - (up to 64 characters).';
      $('customer-id').focus();
      return;
    }
    // Ids are case-insensitive; arbiter knows them upper-cased (the
    // server folds too). The pattern admits ASCII only, so toUpperCase
    // folds nothing else.
    const id = typed.toUpperCase();
    $('customer-id').value = id;
    if (id !== state.customer) {
      stopWatching();
      $('outcome').replaceChildren();
    }
    state.customer = id;
    state.gen++;
    const ok = await loadCustomer();
    if (ok) $('customer-h').focus();
    loadCases();
  }

  async function loadCustomer() {
    const id = state.customer;
    const gen = state.gen;
    if (!id) return false;
    clearTimeout(state.customerTimer);
    try {
      const [cust, audit] = await Promise.all([
        api('GET', '/v1/customers/' + encodeURIComponent(id)),
        api('GET', '/v1/customers/' + encodeURIComponent(id) + '/audit?limit=20'),
      ]);
      if (gen !== state.gen) return false;
      state.view = cust;
      renderCustomer(cust, audit.events || []);
      loadEligibility(id, gen);
      $('lookup-error').textContent = '';
      $('customer-view').hidden = false;
      resumeOwnHold(cust);
      if (cust.hold) state.customerTimer = setTimeout(loadCustomer, 5000); // others' holds change too
      return true;
    } catch (e) {
      if (gen === state.gen && e.status !== 401) $('lookup-error').textContent = e.message;
      return false;
    }
  }

  function renderCustomer(c, events) {
    $('customer-name').textContent = c.customer_id;
    if (!state.eligibility || state.eligibility.customer !== c.customer_id) {
      // Another customer's dry run must not stand under this one's name
      // while theirs is asked for.
      delete $('eligibility').dataset.customer;
      $('eligibility').replaceChildren(el('li', { class: 'muted', text: 'Evaluating…' }));
    }
    renderCustomerCase();
    const list = $('products');
    list.replaceChildren();
    if (!c.products.length) list.append(el('li', { class: 'empty', text: 'No products yet.' }));
    for (const p of c.products) {
      list.append(el('li', { class: 'product', dataset: { product: p.product } },
        el('b', { text: title(p.product) }),
        el('span', { class: 'muted', text: 'since ' + fmtDate(p.granted_at) + ', issued by ' + p.redeemed_by })));
    }
    renderHold(c.hold);
    const tl = $('timeline');
    tl.replaceChildren();
    if (!events.length) tl.append(el('li', { class: 'empty', text: 'Nothing has happened for this customer yet.' }));
    for (const e of events) {
      tl.append(el('li', { class: 'ev-' + e.type },
        el('time', { datetime: e.at, text: fmtWhen(e.at) }), el('span', { text: eventText(e) })));
    }
  }

  // loadEligibility asks arbiter's dry run (GET …/eligibility) what a check
  // of each product would decide now, so the agent can explain a refusal
  // before asking for a check. It places nothing and audits nothing.
  async function loadEligibility(id, gen) {
    state.caseSeen = null;
    const rows = await Promise.all(state.products.map(async (p) => {
      try {
        const e = await api('GET', '/v1/customers/' + encodeURIComponent(id) + '/eligibility?product=' + encodeURIComponent(p.id));
        const open = (e.violations || []).find((x) => x.reason === 'case_open');
        if (open) state.caseSeen = { customer: id, note: open.note || '' };
        return { p, e };
      } catch (err) {
        return { p, err };
      }
    }));
    if (gen !== state.gen) return;
    state.eligibility = { customer: id, rows };
    renderEligibility();
    renderCustomerCase();
  }

  // renderEligibility shows the last dry run. The agent's own check in
  // progress is not a refusal to them: it is worded as their check, and
  // reworded so once a resumed check proves to be theirs.
  function renderEligibility() {
    const seen = state.eligibility;
    if (!seen || seen.customer !== state.customer) return;
    $('eligibility').dataset.customer = seen.customer;
    $('eligibility').replaceChildren(...seen.rows.map(({ p, e, err }) => {
      const name = el('b', { text: p.title + ': ' });
      if (err) {
        return el('li', { dataset: { product: p.id, decision: 'unknown' } }, name, el('span', { class: 'muted', text: 'could not be evaluated (' + err.message + ').' }));
      }
      const v = (e.violations || [])[0] || {};
      const li = el('li', { dataset: { product: p.id, decision: e.decision, reason: v.reason || '' } }, name);
      if (e.decision === 'allow') {
        li.append(el('span', { text: 'eligible now.' }));
      } else if (ownHold(v)) {
        li.dataset.mine = 'true';
        li.append(el('span', { text: 'your check for a ' + title(v.product) + ', in progress until ' + fmtTime(v.until) + '.' }));
      } else {
        li.append(el('span', { text: 'a check would be refused. ' + sentence(v) }));
        if (v.rule) li.append(' ', ruleTag(v));
      }
      return li;
    }));
  }

  function renderHold(h) {
    const box = $('hold');
    box.replaceChildren();
    if (!h) {
      box.append(el('p', { class: 'empty', text: 'None.' }));
      return;
    }
    const mine = state.check && state.check.check_id === h.check_id;
    const hb = el('div', { class: 'hold-box', dataset: { checkId: h.check_id } },
      el('p', {}, el('b', { text: title(h.product) }), ' \u2014 placed by ' + who(h.placed_by, h.agent_id)),
      el('p', {}, el('span', { class: 'hold-left', dataset: { until: h.expires_at } }), ' (until ' + fmtTime(h.expires_at) + ')'));
    if (mine) {
      hb.append(el('p', { class: 'muted', text: 'This is your check: its code is shown under \u201cRequest a check\u201d.' }));
    } else {
      const actions = el('div', { class: 'actions' });
      const btn = el('button', { type: 'button', class: 'danger-outline', text: 'Cancel hold\u2026' });
      btn.addEventListener('click', () => confirmCancel(actions, btn, h));
      actions.append(btn);
      hb.append(actions);
    }
    box.append(hb);
    tick();
  }

  // A reload, or a second tab, finds this agent's own live hold again. The
  // server shows a code only to the agent whose session placed the check, so
  // a hold merely labelled with this agent's name (agent_id sent by another
  // client) is not resumed: it stays a hold that may be cancelled.
  function resumeOwnHold(c) {
    const h = c.hold;
    if (!h || state.check || h.agent_id !== state.user) return;
    api('GET', '/v1/checks/' + encodeURIComponent(h.check_id)).then((ch) => {
      if (!state.check && ch.status === 'held' && ch.otp && ch.customer_id === state.customer) {
        const said = [...$('outcome').children].find((n) => n.dataset.checkId === ch.check_id);
        watch(ch, said);
        renderHold(state.view && state.view.hold);
        renderEligibility();
      }
    }).catch(() => {});
  }

  // ---- checks ----------------------------------------------------------

  function idempotencyKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return 'ui-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  async function requestCheck(ev) {
    ev.preventDefault();
    const picked = document.querySelector('input[name="product"]:checked');
    if (!picked || !state.customer) return;
    const btn = $('check-submit');
    btn.disabled = true;
    stopWatching();
    const out = $('outcome');
    out.replaceChildren(el('p', { class: 'muted', text: 'Checking\u2026' }));
    try {
      const ch = await api('POST', '/v1/checks', { customer_id: state.customer, product: picked.value },
        { headers: { 'Idempotency-Key': idempotencyKey() } });
      watch(ch);
      out.querySelector('.otp-title').focus();
    } catch (e) {
      if (e.status === 401) return;
      out.replaceChildren(refusal(e, picked.value));
      out.querySelector('h3').focus();
    } finally {
      btn.disabled = false;
      loadCustomer();
    }
  }

  // ownHold reports whether a violation is this agent's own check in
  // progress: a hold whose code the server showed this agent. A hold merely
  // labelled with the agent's name by another client is not theirs.
  function ownHold(v) {
    return v.reason === 'hold_exists' && !!v.check_id && !!v.until && state.own.has(v.check_id);
  }

  // ruleTag names the policy rule a violation broke, when the server says.
  function ruleTag(v) {
    return v.rule ? el('span', { class: 'rule', text: 'rule: ' + v.rule }) : null;
  }

  // sentence words one failed rule in the agent's own time zone; the
  // server's detail (in UTC) is the fallback, and the reason code itself
  // when the server sent no sentence.
  function sentence(v) {
    const t = title(v.product);
    switch (v.reason) {
      case 'hold_exists':
        if (ownHold(v)) return 'Your check for a ' + t + ' is in progress until ' + fmtTime(v.until) + '.';
        if (v.until && v.by) return 'Another check for a ' + t + ' is in progress until ' + fmtTime(v.until) + ', placed by ' + v.by + '.';
        break;
      case 'conflicting_product':
        if (v.since) return 'Customer already holds a ' + t + ' since ' + fmtDate(v.since) + ', which excludes this product.';
        break;
      case 'already_holds_product':
        if (v.since) return 'Customer already holds a ' + t + ' since ' + fmtDate(v.since) + '.';
        break;
      case 'case_open':
        if (v.since && v.products) {
          const ts = v.products.map(title);
          const about = ts.length > 1 ? ts.slice(0, -1).join(', ') + ' and ' + ts[ts.length - 1] : ts.join('');
          return 'Customer has an open case since ' + fmtDate(v.since) + ' about their ' + about + ': resolve the case first.';
        }
        break;
    }
    if (v.detail) return v.detail;
    const words = reasonText(v.reason);
    return words.charAt(0).toUpperCase() + words.slice(1) + '.';
  }

  function refusal(e, product) {
    const p = e.problem || {};
    const vs = p.violations || [];
    const box = el('div', { class: 'refusal', role: 'alert', dataset: { reason: p.reason || 'error' } });
    const refused = e.status === 409;
    const mine = vs.length > 0 && ownHold(vs[0]);
    let heading = refused ? 'No ' + title(product) + ' check: refused' : (p.title || 'Something went wrong');
    if (mine) {
      // Not a refusal by someone else: the agent's own check still runs.
      box.dataset.mine = 'true';
      box.dataset.checkId = vs[0].check_id;
      heading = 'No new ' + title(product) + ' check: yours is in progress';
    }
    box.append(el('h3', { tabindex: '-1', text: heading }));
    box.append(el('p', { class: 'detail', text: (vs.length && sentence(vs[0])) || p.detail || e.message }));
    const tag = vs.length ? ruleTag(vs[0]) : null;
    if (tag) box.append(tag);
    if (vs.length > 1) {
      box.append(el('p', { text: 'Also:' }));
      box.append(el('ul', {}, ...vs.slice(1).map((v) => el('li', {}, sentence(v), v.rule ? ' ' : null, ruleTag(v)))));
    }
    if (mine) {
      box.append(el('p', { class: 'muted', text: 'Its code is shown below. Cancel it first if the customer wants a new check.' }));
    } else if (p.reason === 'hold_exists' && p.held_until) {
      box.append(el('p', { class: 'muted', text: 'You can try again after ' + fmtTime(p.held_until) + ', or once that check ends.' }));
    } else if (refused) {
      box.append(el('p', { class: 'muted', text: 'Nothing was reserved for the customer.' }));
    }
    return box;
  }

  // watch shows the check's code and follows it. keep, when given, is a
  // refusal about this very check, left above the code.
  function watch(ch, keep) {
    stopWatching();
    state.check = ch;
    if (ch.otp) state.own.add(ch.check_id);
    const panel = $('otp-template').content.firstElementChild.cloneNode(true);
    panel.querySelector('.otp-product').textContent = title(ch.product);
    panel.querySelector('.copy').addEventListener('click', copyCode);
    const cancelBtn = panel.querySelector('.cancel');
    cancelBtn.addEventListener('click', () => confirmCancel(panel.querySelector('.actions'), cancelBtn, ch));
    const ring = panel.querySelector('.ring-left');
    const c = 2 * Math.PI * 20;
    ring.setAttribute('stroke-dasharray', c.toFixed(2));
    const out = $('outcome');
    for (const n of [...out.children]) if (n !== keep) n.remove();
    out.append(panel);
    renderCheck();
    schedulePoll();
  }

  function stopWatching() {
    clearTimeout(state.pollTimer);
    state.pollTimer = 0;
    state.check = null;
  }

  function schedulePoll() {
    clearTimeout(state.pollTimer);
    const ch = state.check;
    if (!ch || ch.status !== 'held') return;
    let wait = POLL_MS;
    if (ch.otp_expires_at) wait = Math.min(wait, Math.max(50, Date.parse(ch.otp_expires_at) - now() + 50));
    state.pollTimer = setTimeout(poll, wait);
  }

  async function poll() {
    const ch = state.check;
    if (!ch) return;
    try {
      const fresh = await api('GET', '/v1/checks/' + encodeURIComponent(ch.check_id));
      if (state.check !== ch) return;
      state.check = fresh;
      const ended = fresh.status !== 'held';
      renderCheck();
      if (ended) {
        loadCustomer();
        return;
      }
    } catch (e) {
      if (state.check !== ch || e.status === 401) return;
      if (e.status === 404) {
        state.check = Object.assign({}, ch, { status: 'gone' });
        renderCheck();
        return;
      }
      // Network trouble: keep the last code on screen and try again.
    }
    schedulePoll();
  }

  function renderCheck() {
    const ch = state.check;
    const panel = $('otp-panel');
    if (!ch || !panel) return;
    panel.dataset.status = ch.status;
    if (ch.status === 'held') {
      const code = ch.otp || '';
      const groups = panel.querySelectorAll('.otp-group');
      groups[0].textContent = code.slice(0, 3);
      groups[1].textContent = code.slice(3);
      const out = panel.querySelector('.otp-code');
      out.dataset.code = code;
      out.setAttribute('aria-label', 'Code ' + code.split('').join(' '));
      tick();
      return;
    }
    endPanel(panel, ch);
  }

  function endPanel(panel, ch) {
    const t = title(ch.product);
    let line, more;
    switch (ch.status) {
      case 'redeemed':
        line = 'Redeemed by ' + ch.redeemed_by + (ch.granted_at ? ' at ' + fmtTime(ch.granted_at) : '') + '.';
        more = 'The customer now holds a ' + t + '.';
        break;
      case 'cancelled':
        line = 'Cancelled' + (ch.ended_at ? ' at ' + fmtTime(ch.ended_at) : '') + '.';
        more = ch.end_reason === 'otp_locked'
          ? 'Too many wrong codes were entered. Request a new check if the customer still wants a ' + t + '.'
          : 'The code no longer works. Request a new check if the customer still wants a ' + t + '.';
        break;
      case 'expired':
        line = 'Expired unused' + (ch.expires_at ? ' at ' + fmtTime(ch.expires_at) : '') + '.';
        more = 'The code no longer works. Request a new check if the customer still wants a ' + t + '.';
        break;
      default:
        line = 'This check has ended.';
        more = 'Look the customer up again to see where things stand.';
    }
    const status = el('div', { id: 'check-status', role: 'status' },
      el('h3', { text: t + ' check' }),
      el('p', { class: 'status-line', text: line }), el('p', { text: more }));
    status.dataset.status = ch.status;
    panel.replaceChildren(status);
  }

  function confirmCancel(container, trigger, target) {
    if (container.parentNode.querySelector('.confirm')) return;
    const box = $('confirm-template').content.firstElementChild.cloneNode(true);
    box.querySelector('.confirm-text').textContent = 'Cancel the ' + title(target.product) + ' hold placed by ' +
      who(target.placed_by, target.agent_id) + '? Its code stops working at once, and the customer needs a new check.';
    const yes = box.querySelector('.confirm-yes');
    const keep = box.querySelector('.keep');
    const close = () => { box.remove(); trigger.hidden = false; trigger.focus(); };
    keep.addEventListener('click', close);
    box.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api('DELETE', '/v1/checks/' + encodeURIComponent(target.check_id));
        box.remove();
      } catch (e) {
        yes.disabled = false;
        if (e.status !== 409) { box.querySelector('.confirm-error').textContent = e.message; return; }
        box.remove(); // it ended meanwhile: the refresh below says how
      }
      if (state.check && state.check.check_id === target.check_id) await poll();
      await loadCustomer();
    });
    trigger.hidden = true;
    container.after(box);
    keep.focus();
  }

  async function copyCode() {
    const ch = state.check;
    const panel = $('otp-panel');
    if (!ch || !ch.otp || !panel) return;
    const note = panel.querySelector('.copied');
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(ch.otp);
      } else {
        const ta = el('textarea', { readonly: '', 'aria-hidden': 'true' });
        ta.value = ch.otp;
        document.body.append(ta);
        ta.select();
        document.execCommand('copy');
        ta.remove();
      }
      note.textContent = 'Copied';
    } catch (e) {
      note.textContent = 'Could not copy: select the digits instead';
    }
    setTimeout(() => { note.textContent = ''; }, 2500);
  }

  // ---- countdowns ------------------------------------------------------

  function tick() {
    const t = now();
    for (const n of document.querySelectorAll('.hold-left[data-until]')) {
      const left = Date.parse(n.dataset.until) - t;
      n.textContent = left > 0 ? fmtLeft(left) + ' left' : 'ending\u2026';
    }
    const ch = state.check;
    const panel = $('otp-panel');
    if (!ch || ch.status !== 'held' || !panel || panel.dataset.status !== 'held') return;
    const codeLeft = ch.otp_expires_at ? Date.parse(ch.otp_expires_at) - t : 0;
    const secs = Math.max(0, Math.ceil(codeLeft / 1000));
    const ring = panel.querySelector('.ring-left');
    const c = 2 * Math.PI * 20;
    ring.setAttribute('stroke-dashoffset', (c * (1 - Math.min(1, Math.max(0, codeLeft) / OTP_PERIOD_MS))).toFixed(2));
    panel.querySelector('.ring').classList.toggle('low', secs <= 5);
    panel.querySelector('.ring-secs').textContent = String(secs);
    panel.querySelector('.otp-next').textContent = 'New code in ' + secs + ' s';
    const holdLeft = Date.parse(ch.expires_at) - t;
    panel.querySelector('.hold-left').textContent = holdLeft > 0
      ? 'Hold ends in ' + fmtLeft(holdLeft) + ' (at ' + fmtTime(ch.expires_at) + ')'
      : 'Hold ending\u2026';
  }

  // ---- start -----------------------------------------------------------

  async function start() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('lookup-form').addEventListener('submit', lookUp);
    $('check-form').addEventListener('submit', requestCheck);
    setInterval(tick, 250);
    try {
      startSession(await api('GET', '/branch/session', undefined, { signIn: true }));
    } catch (e) {
      showSignIn(e.status === 401 ? '' : e.message);
    }
  }

  start();
})();
