// The policy impact page: POST /v1/policy/impact with an admin's API key,
// then the report in words. Everything shown goes through textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("impact-form");
  const result = $("impact-result");
  const error = $("impact-error");

  const titles = {
    family_limit: "a family limit",
    cooling_off: "a cooling-off period",
    already_holds_product: "a product's maximum",
    conflicting_product: "an exclusive group",
    invalid_request: "a product the candidate does not know",
  };

  function item(text) {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function percent(share) {
    return (Math.round(share * 1000) / 10).toString() + " %";
  }

  function show(r) {
    $("r-version").textContent = r.policy_version;
    $("r-scanned").textContent = String(r.customers_scanned);
    $("r-in-violation").textContent = String(r.customers_in_violation);
    const rc = r.recent_checks;
    $("r-since").textContent = new Date(rc.since).toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric" });
    $("r-total").textContent = String(rc.total);
    $("r-refused").textContent = rc.would_refuse + " (" + percent(rc.share) + ")";
    const byReason = $("r-by-reason");
    byReason.replaceChildren();
    for (const [reason, n] of Object.entries(rc.by_reason).sort((a, b) => b[1] - a[1])) {
      const li = item(n + " by " + (titles[reason] || reason));
      li.dataset.reason = reason;
      byReason.append(li);
    }
    if (byReason.children.length === 0) byReason.append(item("None."));
    const examples = $("r-examples");
    examples.replaceChildren();
    for (const ex of r.examples) {
      const li = document.createElement("li");
      li.dataset.customer = ex.customer_id;
      const who = document.createElement("strong");
      who.textContent = ex.customer_id + ": ";
      li.append(who);
      li.append(ex.violations.map((v) => v.detail).join(" "));
      examples.append(li);
    }
    $("r-no-examples").hidden = r.examples.length > 0;
    result.hidden = false;
    result.dataset.state = "done";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    result.hidden = true;
    result.dataset.state = "asking";
    const q = new URLSearchParams();
    const at = $("at").value.trim();
    if (at) q.set("at", at);
    const n = $("examples").value.trim();
    if (n) q.set("examples", n);
    let body;
    let resp;
    try {
      resp = await fetch("/v1/policy/impact" + (q.size ? "?" + q : ""), {
        method: "POST",
        headers: { "Authorization": "Bearer " + $("key").value.trim(), "Content-Type": "application/yaml" },
        body: $("policy").value,
        credentials: "omit",
      });
      body = await resp.json();
    } catch (e) {
      body = { detail: "arbiter did not answer; try again." };
    }
    if (resp && resp.ok) {
      show(body);
      return;
    }
    error.textContent = (body.title ? body.title + ": " : "") + (body.detail || "the candidate could not be tried");
    error.dataset.reason = body.reason || "";
    error.hidden = false;
    result.dataset.state = "error";
  });
})();
