/* The Link page inside link.js's frame: tells the opening page the outcome (the public token, or
   that the clinic left), only at the client's allowed origins, and moves focus into the form. */
(function () {
  "use strict";
  var body = document.body;
  var origins = JSON.parse(body.getAttribute("data-origins") || "[]");
  var target = window.parent !== window ? window.parent : window.opener;

  function tell(message) {
    if (!target) { return; }
    for (var i = 0; i < origins.length; i++) { target.postMessage(message, origins[i]); }
  }

  function leave() { tell({ type: "emrtasks-link-exit" }); }

  var result = document.getElementById("public-token");
  if (result && result.getAttribute("data-public-token")) {
    tell({ type: "emrtasks-link", public_token: result.getAttribute("data-public-token") });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); leave(); }
  });
  var cancels = document.querySelectorAll("[data-link-exit]");
  for (var i = 0; i < cancels.length; i++) {
    cancels[i].hidden = false;
    cancels[i].addEventListener("click", function (event) { event.preventDefault(); leave(); });
  }
  function focusFirst() {
    var first = document.querySelector("[data-first-field]");
    if (first && (!document.activeElement || document.activeElement === body)) { first.focus(); }
  }
  window.addEventListener("focus", focusFirst);
  if (document.hasFocus()) { focusFirst(); }
})();
