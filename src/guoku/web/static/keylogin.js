// Sign-in with the USB key: ask the server for a challenge, have the local key agent sign it
// after the clerk's PIN (the PIN goes to 127.0.0.1 only), then post password and signature.
"use strict";
(function () {
  const form = document.getElementById("login-form");
  if (!form) { return; }
  const agent = form.dataset.agent;
  const error = document.getElementById("login-error");
  const button = document.getElementById("login-button");

  function fail(message) {
    error.textContent = message;
    button.disabled = false;
    document.getElementById("pin").value = "";
  }

  async function json(response) {
    try { return await response.json(); } catch (e) { return {}; }
  }

  form.addEventListener("submit", async function (event) {
    if (form.dataset.signed === "1") { return; }
    event.preventDefault();
    error.textContent = "";
    button.disabled = true;
    const username = document.getElementById("username").value.trim();
    const pin = document.getElementById("pin").value;
    let challenge;
    try {
      const response = await fetch("/login/challenge", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username: username }),
      });
      const body = await json(response);
      if (!response.ok) { return fail(body.message || "无法取得登录挑战"); }
      challenge = body.challenge;
    } catch (e) { return fail("无法连接服务器"); }
    let signed;
    try {
      const response = await fetch(agent + "/v1/sign", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: username, pin: pin, challenge: challenge }),
      });
      signed = await json(response);
      if (!response.ok) {
        const messages = { PIN_INCORRECT: "U盾口令错误", TOKEN_LOCKED: "U盾已锁定，请联系管理员解锁",
                           NOT_FOUND: "未找到该用户的U盾" };
        return fail(messages[signed.code] || signed.message || "U盾签名失败");
      }
    } catch (e) { return fail("未检测到U盾助手：请先运行 guoku key-agent"); }
    document.getElementById("pin").value = "";
    document.getElementById("challenge").value = challenge;
    document.getElementById("certificate").value = signed.certificate;
    document.getElementById("signature").value = signed.signature;
    form.dataset.signed = "1";
    form.submit();
  });
})();
