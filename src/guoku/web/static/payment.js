// Live payee-account check on the payment form: the same check the library runs on the
// voucher (format, account directory, name, bank), shown while the clerk types.
"use strict";
(function () {
  const account = document.getElementById("payee_account");
  if (!account) { return; }
  const name = document.getElementById("payee_name");
  const bank = document.getElementById("payee_bank");
  const out = document.getElementById("payee-check");

  async function check() {
    if (!account.value.trim()) { out.textContent = ""; return; }
    const query = new URLSearchParams({ account_no: account.value.trim(), name: name.value.trim(),
                                        bank_name: bank.value.trim() });
    let body;
    try {
      const response = await fetch("/counter/payees/check?" + query, { credentials: "same-origin",
                                                                        headers: { Accept: "application/json" } });
      body = await response.json();
      if (!response.ok) { out.textContent = body.message || "无法校验"; return; }
    } catch (e) { out.textContent = "无法校验账户"; return; }
    if (body.found && !name.value.trim()) { name.value = body.name; }
    if (body.found && !bank.value.trim()) { bank.value = body.bank_name; }
    const problems = body.problems.map(function (p) { return p.message; });
    out.className = "check " + (body.passed && problems.length === 0 ? "ok" : body.passed ? "warn" : "bad");
    out.textContent = (body.passed ? "账户校验通过" : "账户校验未通过") +
      (problems.length ? "：" + problems.join("；") : "");
  }

  document.getElementById("payee-lookup").addEventListener("click", check);
  account.addEventListener("change", check);
  name.addEventListener("change", check);
  bank.addEventListener("change", check);
})();
