/* emrtasks Link: EmrtasksLink.open({token, onSuccess(public_token), onExit()}) opens the Link page
   in a modal frame on the including page. Messages are accepted only from our own origin and frame. */
(function () {
  "use strict";
  var script = document.currentScript;
  var ORIGIN = new URL(script && script.src ? script.src : "/", window.location.href).origin;
  var current = null;

  function close(notify) {
    if (!current) { return; }
    var state = current;
    current = null;
    window.removeEventListener("message", state.onMessage);
    document.removeEventListener("keydown", state.onKey, true);
    document.removeEventListener("focusin", state.onFocus, true);
    state.overlay.parentNode && state.overlay.parentNode.removeChild(state.overlay);
    document.documentElement.style.overflow = state.overflow;
    if (state.returnFocus && state.returnFocus.focus) { state.returnFocus.focus(); }
    if (notify) { notify(); }
  }

  function build(url, label) {
    var overlay = document.createElement("div");
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", label);
    overlay.style.cssText = "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);" +
      "display:flex;align-items:center;justify-content:center;";
    var frame = document.createElement("iframe");
    frame.src = url;
    frame.title = label;
    frame.style.cssText = "width:min(34rem,96vw);height:min(44rem,92vh);border:0;border-radius:10px;" +
      "background:#fff;box-shadow:0 10px 40px rgba(0,0,0,.35);";
    overlay.appendChild(frame);
    return { overlay: overlay, frame: frame };
  }

  function open(options) {
    if (!options || typeof options.token !== "string" || options.token.indexOf("lt_") !== 0) {
      throw new Error("EmrtasksLink.open needs {token: 'lt_...'}");
    }
    close();
    var onSuccess = options.onSuccess || function () {};
    var onExit = options.onExit || function () {};
    var url = ORIGIN + "/link?mode=lightbox&token=" + encodeURIComponent(options.token);
    var parts = build(url, "Link your EMR");
    var state = {
      overlay: parts.overlay,
      frame: parts.frame,
      returnFocus: document.activeElement,
      overflow: document.documentElement.style.overflow
    };
    state.onMessage = function (event) {
      // Only our Link page, in this very frame, speaks to us.
      if (event.origin !== ORIGIN || event.source !== state.frame.contentWindow) { return; }
      var data = event.data || {};
      if (data.type === "emrtasks-link" && typeof data.public_token === "string") {
        close(function () { onSuccess(data.public_token); });
      } else if (data.type === "emrtasks-link-exit") {
        close(onExit);
      }
    };
    state.onKey = function (event) {
      if (event.key === "Escape") { event.preventDefault(); close(onExit); }
    };
    state.onFocus = function (event) {
      // Focus stays in the dialog while it is open.
      if (!state.overlay.contains(event.target)) { state.frame.focus(); }
    };
    state.overlay.addEventListener("click", function (event) {
      if (event.target === state.overlay) { close(onExit); }
    });
    window.addEventListener("message", state.onMessage);
    document.addEventListener("keydown", state.onKey, true);
    document.addEventListener("focusin", state.onFocus, true);
    document.documentElement.style.overflow = "hidden";
    document.body.appendChild(state.overlay);
    current = state;
    state.frame.addEventListener("load", function () { state.frame.focus(); });
    state.frame.focus();
    return { close: function () { close(onExit); } };
  }

  window.EmrtasksLink = { open: open, origin: ORIGIN };
})();
