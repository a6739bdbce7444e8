// Starts Redoc on /redoc. A file of our own rather than an inline script, so the page's
// Content-Security-Policy can allow scripts from 'self' only; Redoc puts the page's nonce on the
// style elements it adds, the only styles the policy lets in besides our own origin's. Its search
// runs in a worker started from a blob: URL, which the policy refuses: /docs searches instead.
window.addEventListener("load", function () {
  var body = document.body;
  Redoc.init(body.dataset.openapiUrl, { nonce: body.dataset.nonce, disableSearch: true }, document.getElementById("redoc"));
});
