/*
 * Passkeys on the hosted pages (WebAuthn Level 3). The page embeds the ceremony's options as data
 * (<script type="application/json" id="webauthn-options">, never executed: CSP stays script-src
 * 'self'); this file calls navigator.credentials.get / create with them, puts the credential's JSON
 * into the hidden <input name="credential"> of an ordinary form and submits it, so the server
 * checks it with the same CSRF token and Sec-Fetch-Site / Origin checks as every form.
 *
 * Forms:
 *   <form data-webauthn="get">     a button [data-webauthn-start] signs in (or verifies) with a
 *                                  passkey; with data-conditional, the browser also offers passkeys
 *                                  in the username field's autofill (autocomplete="username webauthn").
 *   <form data-webauthn="create">  submitting it first creates a passkey (the form's own fields,
 *                                  e.g. its name and the current password, are checked by the browser).
 * Messages live in the page, translated, hidden; this only shows one: [data-webauthn-error="kind"]
 * for kind cancelled / exists / failed / unsupported, or the catch-all [data-webauthn-error].
 * Elements marked [data-webauthn-only] stay hidden where the browser has no WebAuthn.
 */
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: toBuffer(c.id) }); });
  }

  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, { challenge: toBuffer(json.challenge),
                                     allowCredentials: descriptors(json.allowCredentials) });
  }

  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, { challenge: toBuffer(json.challenge),
                                     user: Object.assign({}, json.user, { id: toBuffer(json.user.id) }),
                                     excludeCredentials: descriptors(json.excludeCredentials) });
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try { return JSON.stringify(credential.toJSON()); } catch (e) { /* fall back below */ }
    }
    var r = credential.response;
    var out = { id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
                authenticatorAttachment: credential.authenticatorAttachment || null,
                clientExtensionResults: credential.getClientExtensionResults(),
                response: { clientDataJSON: toBase64url(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = toBase64url(r.attestationObject);
      out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      out.response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return JSON.stringify(out);
  }

  // Show the message for `kind` (null: none): the element whose data-webauthn-error names it, else
  // the page's catch-all (data-webauthn-error with no value).
  function show(kind) {
    var all = Array.prototype.slice.call(document.querySelectorAll("[data-webauthn-error]"));
    var specific = all.some(function (el) { return el.getAttribute("data-webauthn-error") === kind; });
    all.forEach(function (el) {
      var value = el.getAttribute("data-webauthn-error");
      el.hidden = !kind || !(value === kind || (!specific && value === ""));
    });
  }

  function submitWith(form, credential) {
    form.querySelector('input[name="credential"]').value = credentialJSON(credential);
    form.submit();  // no submit event: the create form's handler does not run again
  }

  function failed(error) {
    if (error && error.name === "AbortError") return;  // we cancelled it (conditional UI gave way)
    if (error && error.name === "InvalidStateError") return show("exists");
    show(error && error.name === "NotAllowedError" ? "cancelled" : "failed");
  }

  var data = document.getElementById("webauthn-options");
  if (!data) return;
  if (!window.PublicKeyCredential || !navigator.credentials) {
    show("unsupported");
    return;
  }
  var options = JSON.parse(data.textContent);
  document.querySelectorAll("[data-webauthn-only]").forEach(function (el) { el.hidden = false; });

  var pending = null;  // the conditional request, aborted when the button is used

  document.querySelectorAll('form[data-webauthn="get"]').forEach(function (form) {
    var button = form.querySelector("[data-webauthn-start]");
    if (button) {
      button.addEventListener("click", function () {
        if (pending) pending.abort();
        show(null);
        navigator.credentials.get({ publicKey: requestOptions(options) })
          .then(function (credential) { submitWith(form, credential); }, failed);
      });
    }
    if (form.hasAttribute("data-conditional") &&
        typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        pending = new AbortController();
        navigator.credentials.get({ publicKey: requestOptions(options), mediation: "conditional",
                                    signal: pending.signal })
          .then(function (credential) { submitWith(form, credential); }, function () { /* silent: autofill */ });
      });
    }
  });

  document.querySelectorAll('form[data-webauthn="create"]').forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      show(null);
      navigator.credentials.create({ publicKey: creationOptions(options) })
        .then(function (credential) { submitWith(form, credential); }, failed);
    });
  });
})();
