/* global window, document */
// Passkey ceremonies on the hosted pages, driven by the SimpleWebAuthnBrowser global from the
// @simplewebauthn/browser bundle. Each page marks its passkey area with data attributes (where to
// get options, where to post the result, the CSRF token); this script wires them up. No inline
// handlers: the CSP allows scripts from our own origin only.
//
// - #passkey-register (/account): create a credential and save it under the given label.
// - #passkey-step (second step of a sign-in): prove the pending account's passkey.
// - #passkey-login (login page): "Sign in with a passkey", plus the browser's passkey autofill on
//   the Email field (conditional mediation), which an explicit click cancels first.
(function () {
  'use strict';

  var lib = window.SimpleWebAuthnBrowser;

  function showError(el, message) {
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
  }

  function clearError(el) {
    if (!el) return;
    el.textContent = '';
    el.hidden = true;
  }

  function isAbort(err) {
    return Boolean(err) && (err.name === 'AbortError' || err.code === 'ERROR_CEREMONY_ABORTED');
  }

  /** A message a person can act on, for an error from the browser or from our endpoints. */
  function describe(err, registering) {
    if (err && err.fromServer) return err.message;
    if (err && err.code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') return 'This device already holds a passkey for your account.';
    if (err && (err.name === 'NotAllowedError' || err.code === 'ERROR_CEREMONY_ABORTED')) {
      return registering ? 'No passkey was created: the request was cancelled or timed out. Try again.' : 'No passkey was used: the request was cancelled or timed out. Try again.';
    }
    if (err && err.name === 'SecurityError') return 'Passkeys cannot be used on this address.';
    return 'Something went wrong with the passkey. Try again.';
  }

  async function readJson(res) {
    // An error page from a proxy is not JSON; the status is all there is then.
    var body = await res.json().catch(function () { return null; });
    if (!res.ok) {
      var err = new Error(body && body.error_description ? body.error_description : 'The server refused the request (' + res.status + '). Reload the page and try again.');
      err.fromServer = true;
      throw err;
    }
    return body;
  }

  async function getJson(url) {
    return readJson(await fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } }));
  }

  async function postJson(url, csrf, payload) {
    return readJson(await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { accept: 'application/json', 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(payload),
    }));
  }

  function go(result) {
    if (result && typeof result.redirect === 'string') window.location.assign(result.redirect);
  }

  function unsupported(errorEl) {
    showError(errorEl, 'This browser cannot use passkeys.');
  }

  // A button that runs one WebAuthn ceremony (registration, or authentication as a second
  // factor): options from the server, the browser's prompt, the answer posted back, then the page
  // the server names. `body` wraps the browser's answer for the verify endpoint.
  function bindCeremony(root, button, errorEl, registering, body) {
    button.addEventListener('click', async function () {
      clearError(errorEl);
      if (!lib || !lib.browserSupportsWebAuthn()) return unsupported(errorEl);
      button.disabled = true;
      try {
        var options = await getJson(root.dataset.optionsUrl);
        var ceremony = registering ? lib.startRegistration : lib.startAuthentication;
        var response = await ceremony({ optionsJSON: options });
        go(await postJson(root.dataset.verifyUrl, root.dataset.csrf, body(response)));
      } catch (err) {
        showError(errorEl, describe(err, registering));
        button.disabled = false;
      }
    });
  }

  // /account: add a passkey
  function setUpRegistration(root) {
    var button = document.getElementById('passkey-add');
    var nameInput = document.getElementById('passkey-name');
    if (!button) return;
    bindCeremony(root, button, root.querySelector('#passkey-error'), true, function (response) {
      return { name: nameInput ? nameInput.value : '', response: response };
    });
  }

  // Second step of a sign-in
  function setUpSecondFactor(root) {
    var button = document.getElementById('passkey-button');
    if (!button) return;
    bindCeremony(root, button, root.querySelector('#passkey-error'), false, function (response) {
      return { purpose: 'second-factor', response: response };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Login page: passwordless
  // -------------------------------------------------------------------------------------------
  function setUpPasswordless(root) {
    var button = document.getElementById('passkey-login-button');
    var errorEl = root.querySelector('#passkey-login-error');
    if (!button || !lib || !lib.browserSupportsWebAuthn()) return;
    root.hidden = false;
    // Once the person asks explicitly, the autofill request must not start (or restart) behind it.
    var explicit = false;

    function remember() {
      var box = document.getElementById('remember');
      return Boolean(box && box.checked);
    }

    function finish(response) {
      return postJson(root.dataset.verifyUrl, root.dataset.csrf, { purpose: 'passwordless', response: response, remember: remember() }).then(go);
    }

    button.addEventListener('click', async function () {
      explicit = true;
      clearError(errorEl);
      // Ends a pending autofill request; startAuthentication would also do so, but only once the
      // new options have arrived.
      lib.WebAuthnAbortService.cancelCeremony();
      button.disabled = true;
      try {
        var options = await getJson(root.dataset.optionsUrl);
        await finish(await lib.startAuthentication({ optionsJSON: options }));
      } catch (err) {
        showError(errorEl, describe(err, false));
        button.disabled = false;
      }
    });

    // Passkeys offered in the Email field's autofill. The request starts when the person first
    // clicks or types in the field (which is when the browser shows its list), not on page load:
    // an authenticator that answers without asking anyone would otherwise sign in before the
    // page was even seen.
    var email = document.querySelector("input[autocomplete$='webauthn']");
    var autofillRunning = false;

    async function startAutofill() {
      if (autofillRunning || explicit) return;
      autofillRunning = true;
      try {
        if (!(await lib.browserSupportsWebAuthnAutofill()) || explicit) return;
        var options = await getJson(root.dataset.optionsUrl);
        if (explicit) return;
        await finish(await lib.startAuthentication({ optionsJSON: options, useBrowserAutofill: true }));
      } catch (err) {
        // Cancelled by a click on the button, or dismissed: nothing to tell, and the next
        // interaction may try again. A refusal from the server is worth showing.
        autofillRunning = false;
        if (!explicit && !isAbort(err) && err && err.fromServer) showError(errorEl, err.message);
      }
    }

    if (email) {
      email.addEventListener('pointerdown', startAutofill);
      email.addEventListener('keydown', startAutofill);
    }
  }

  function start() {
    var register = document.getElementById('passkey-register');
    if (register) setUpRegistration(register);
    var step = document.getElementById('passkey-step');
    if (step) setUpSecondFactor(step);
    var login = document.getElementById('passkey-login');
    if (login) setUpPasswordless(login);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
