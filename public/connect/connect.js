/*
 * The connect page: plain JavaScript, no build step, no third-party code (CSP: script-src 'self').
 *
 * Where the platform JWT comes from, first match wins:
 *   1. `?token=<jwt>` in the page URL (a platform embedding the page). It is moved into sessionStorage and
 *      removed from the address bar at once, so it does not stay in history or get bookmarked.
 *   2. sessionStorage `instagramConnect.jwt` (set by a platform on this origin, or by step 1).
 *   3. Pasted by the admin into the form; then it lives only in the input, never in storage.
 * `?subaccountId=` and `?agentId=` prefill the ids.
 *
 * Secrets: the Instagram access token and the app secret are read once into the request body and their
 * inputs are emptied right after the request is sent, whatever the answer. They are never put in the URL,
 * in storage, or in the console.
 */
(function () {
  'use strict';

  var JWT_KEY = 'instagramConnect.jwt';
  var BODY_FIELDS = ['accessToken', 'instagramAccountId', 'pageId', 'webhookVerificationToken', 'appSecret'];
  var ALL_FIELDS = ['jwt', 'subaccountId', 'agentId'].concat(BODY_FIELDS);

  var PAGE_MESSAGES = {
    401: 'Your platform access token (JWT) is missing, invalid or expired. Paste a fresh one and try again.',
    403: 'This platform access token may not do this for this subaccount. An admin of the subaccount is needed.',
    404: 'No such subaccount or chat agent. Check the subaccount id and the agent id.',
    409: 'This Instagram account is already connected to another chat agent. Disconnect it there first.',
    413: 'The form is too large to send. Check the pasted values.',
    429: 'Too many attempts. Wait a minute and try again.',
    502: 'Instagram could not be reached. Nothing was changed; try again in a minute.',
    503: 'The connector is temporarily unavailable. Try again in a minute.',
  };
  var FALLBACK_MESSAGE =
    'Something went wrong on our side. Try again; if it keeps happening, contact support.';
  var NETWORK_MESSAGE = 'The connector could not be reached. Check your connection and try again.';

  function $(id) {
    return document.getElementById(id);
  }

  var form = $('connect-form');
  var formView = $('form-view');
  var connectedView = $('connected-view');
  var pageAlert = $('page-alert');
  var connectButton = $('connect-button');
  var busy = $('form-busy');
  var state = { connected: null };

  // ---- where the JWT and the ids come from ---------------------------------------------------------------

  function readStoredJwt() {
    try {
      return sessionStorage.getItem(JWT_KEY) || '';
    } catch (_e) {
      return '';
    }
  }

  function init() {
    var params = new URLSearchParams(location.search);
    var fromUrl = params.get('token');
    if (fromUrl) {
      try {
        sessionStorage.setItem(JWT_KEY, fromUrl);
      } catch (_e) {
        /* storage disabled: the token still fills the input below */
      }
      params.delete('token');
      var query = params.toString();
      history.replaceState(null, '', location.pathname + (query ? '?' + query : '') + location.hash);
    }
    var jwt = fromUrl || readStoredJwt();
    if (jwt) $('jwt').value = jwt;
    if (params.get('subaccountId')) $('subaccountId').value = params.get('subaccountId');
    if (params.get('agentId')) $('agentId').value = params.get('agentId');

    form.addEventListener('submit', onSubmit);
    $('accessToken').addEventListener('input', updateTokenHint);
    $('print-button').addEventListener('click', function () {
      window.print();
    });
    $('disconnect-button').addEventListener('click', askDisconnect);
    $('disconnect-no').addEventListener('click', cancelDisconnect);
    $('disconnect-yes').addEventListener('click', onDisconnect);
    window.addEventListener('resize', function () {
      if (!connectedView.hidden) fitCopyFields();
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-copy]'), function (button) {
      button.addEventListener('click', function () {
        copyFrom($(button.getAttribute('data-copy')), button);
      });
    });
    ALL_FIELDS.forEach(function (name) {
      $(name).addEventListener('input', function () {
        clearFieldError(name);
      });
    });

    if (ids()) loadStatus();
  }

  function ids() {
    var jwt = $('jwt').value.trim();
    var subaccountId = $('subaccountId').value.trim();
    var agentId = $('agentId').value.trim();
    return jwt && subaccountId && agentId ? { jwt: jwt, subaccountId: subaccountId, agentId: agentId } : null;
  }

  function updateTokenHint() {
    var token = $('accessToken').value.trim();
    $('page-token-hint').hidden = !token || /^IG/.test(token);
  }

  // ---- talking to the connector ----------------------------------------------------------------------------

  function apiUrl(who, route) {
    return (
      '/api/database/' +
      encodeURIComponent(who.subaccountId) +
      '/chat-agents/' +
      encodeURIComponent(who.agentId) +
      '/instagram/' +
      route
    );
  }

  /** Resolves to { status, body } for any HTTP answer; rejects only when the connector is unreachable. */
  function call(who, method, route, bodyText) {
    var init = { method: method, headers: { Authorization: 'Bearer ' + who.jwt }, cache: 'no-store' };
    if (bodyText !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = bodyText;
    }
    return fetch(apiUrl(who, route), init).then(function (res) {
      return res
        .json()
        .catch(function () {
          return null;
        })
        .then(function (body) {
          return { status: res.status, body: body };
        });
    });
  }

  // ---- connect ---------------------------------------------------------------------------------------------

  function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    var who = requireIds();
    if (!who) return;
    var body = {};
    BODY_FIELDS.forEach(function (name) {
      var value = $(name).value.trim();
      if (value) body[name] = value;
    });
    if (!body.accessToken) {
      showFieldError('accessToken', 'Paste the Instagram access token.');
      $('accessToken').focus();
      return;
    }

    var request = call(who, 'POST', 'connect', JSON.stringify(body));
    // The request has its copy: the secrets leave the page now, whatever the answer.
    $('accessToken').value = '';
    $('appSecret').value = '';
    body = null;
    setBusy(true, 'Checking the token with Instagram…');

    request
      .then(function (res) {
        if (res.status === 200 && res.body && res.body.success) {
          showConnected(res.body.data, who);
          return;
        }
        showError(res);
      })
      .catch(function () {
        showPageAlert(NETWORK_MESSAGE);
      })
      .then(function () {
        setBusy(false, '');
      });
  }

  function requireIds() {
    var missing = [];
    [
      ['jwt', 'Paste your platform access token.'],
      ['subaccountId', 'Enter the subaccount id.'],
      ['agentId', 'Enter the chat agent id.'],
    ].forEach(function (pair) {
      if (!$(pair[0]).value.trim()) {
        showFieldError(pair[0], pair[1]);
        missing.push(pair[0]);
      }
    });
    if (missing.length) {
      $(missing[0]).focus();
      return null;
    }
    return ids();
  }

  function setBusy(on, text) {
    connectButton.disabled = on;
    connectButton.setAttribute('aria-busy', on ? 'true' : 'false');
    busy.textContent = text;
  }

  // ---- errors ----------------------------------------------------------------------------------------------

  function showError(res) {
    var error = (res.body && res.body.error) || {};
    if (res.status === 400 && error.code === 'VALIDATION_ERROR' && Array.isArray(error.details)) {
      var unmatched = [];
      var first = null;
      error.details.forEach(function (d) {
        var name = String(d.field || '').replace(/^(body|params|query)\./, '');
        if (ALL_FIELDS.indexOf(name) >= 0) {
          showFieldError(name, sentence(String(d.message || '').replace(name, labelOf(name))));
          first = first || name;
        } else {
          unmatched.push(sentence(d.message));
        }
      });
      if (unmatched.length) showPageAlert('Some values were refused: ' + unmatched.join(' '));
      else if (first)
        showPageAlert('Please correct the highlighted field' + (error.details.length > 1 ? 's.' : '.'));
      if (first) {
        if (first === 'webhookVerificationToken' || first === 'appSecret')
          form.querySelector('details').open = true;
        $(first).focus();
      }
      return;
    }
    if (res.status === 422 && error.code === 'INSTAGRAM_AUTH_FAILED') {
      showFieldError(
        'accessToken',
        'Instagram refused this token' + (error.message ? ': ' + sentence(error.message) : '.'),
      );
      $('accessToken').focus();
      return;
    }
    showPageAlert(PAGE_MESSAGES[res.status] || FALLBACK_MESSAGE);
  }

  /** The visible label of a field, without its "optional" tag: "Instagram account id". */
  function labelOf(name) {
    var label = document.querySelector('label[for="' + name + '"]');
    return label && label.firstChild ? label.firstChild.textContent.trim() : name;
  }

  function sentence(text) {
    var s = String(text || '').trim();
    if (!s) return '';
    s = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?]$/.test(s) ? s : s + '.';
  }

  function showFieldError(name, message) {
    var input = $(name);
    var slot = $(name + '-error');
    slot.textContent = message;
    slot.hidden = false;
    input.setAttribute('aria-invalid', 'true');
  }

  function clearFieldError(name) {
    var slot = $(name + '-error');
    slot.textContent = '';
    slot.hidden = true;
    $(name).removeAttribute('aria-invalid');
  }

  function clearErrors() {
    ALL_FIELDS.forEach(clearFieldError);
    pageAlert.hidden = true;
    pageAlert.textContent = '';
  }

  function showPageAlert(message) {
    pageAlert.textContent = message;
    pageAlert.hidden = false;
  }

  // ---- the connected view ----------------------------------------------------------------------------------

  function loadStatus() {
    var who = ids();
    if (!who) return Promise.resolve();
    return call(who, 'GET', 'status')
      .then(function (res) {
        if (res.status !== 200 || !res.body || !res.body.success) {
          showError(res);
          return;
        }
        var data = res.body.data;
        if (data.isConnected) {
          if (state.connected) fillStatus(data);
          else showConnected(data, who);
        }
      })
      .catch(function () {
        showPageAlert(NETWORK_MESSAGE);
      });
  }

  function showConnected(data, who) {
    state.connected = { who: who, username: data.username };
    $('qr-image').src = data.qrCodeDataUrl;
    $('qr-image').alt = 'QR code that opens a direct message with @' + data.username + ' on Instagram';
    $('qr-download').href = data.qrCodeDataUrl;
    $('qr-download').setAttribute('download', 'instagram-qr-' + safeFileName(data.username) + '.png');
    text('print-caption', 'Scan to message @' + data.username + ' on Instagram');
    setLink($('dm-link'), data.dmUrl, data.dmUrl.replace(/^https:\/\//, ''));
    setLink($('profile-link'), data.instagramUrl, '@' + data.username);
    $('webhook-url').value = data.webhookUrl || '';

    var hasVerifyToken = typeof data.webhookVerificationToken === 'string';
    $('verify-token').value = hasVerifyToken ? data.webhookVerificationToken : '';
    $('verify-token-field').hidden = !hasVerifyToken;
    $('verify-token-missing').hidden = hasVerifyToken;

    showSubscription(data.webhookSubscription, data.webhookSubscriptionError);
    fillStatus(data);
    $('disconnect-question').firstChild.textContent = 'Disconnect @' + data.username + ' from this agent?';
    cancelDisconnect();

    formView.hidden = true;
    connectedView.hidden = false;
    fitCopyFields();
    $('connected-title').focus();
    // Connect answers with what it did; status adds what it knows (page, times, signature check).
    if (data.connectedAt === undefined) loadStatus();
  }

  function showSubscription(subscription, error) {
    var el = $('subscription');
    el.className = 'notice';
    if (subscription === 'subscribed') {
      el.classList.add('ok');
      el.textContent =
        'Webhook events are subscribed: Meta will send new messages to the callback URL below.';
    } else if (subscription === 'failed') {
      el.classList.add('warn');
      el.textContent =
        'Meta refused the webhook subscription' +
        (error ? ': ' + sentence(error) : '.') +
        ' Messages will not arrive until the fields are subscribed in the Meta app dashboard.';
    } else {
      el.textContent = 'Set this callback URL and verify token in your Meta app’s Webhooks settings.';
    }
  }

  function fillStatus(data) {
    text('st-username', data.username ? '@' + data.username : '—');
    text('st-account', data.instagramAccountId || '—');
    text('st-page', data.pageId || '—');
    text('st-connected', when(data.connectedAt));
    text('st-verified', data.webhookVerifiedAt ? when(data.webhookVerifiedAt) : 'Not yet');
    text('st-last-event', data.lastEventAt ? when(data.lastEventAt) : 'None yet');
    if (data.tokenStatus) {
      text('st-token', data.tokenStatus === 'valid' ? 'Valid' : 'Refused by Instagram: connect again');
    }
    if (typeof data.signatureVerification === 'boolean') {
      text('st-signature', data.signatureVerification ? 'On (app secret set)' : 'Off: no app secret');
    }
    if (data.webhookSubscription && !$('subscription').classList.contains('warn')) {
      showSubscription(data.webhookSubscription);
    }
  }

  /** The read-only URL and token wrap instead of scrolling: each box grows to show its whole value. */
  function fitCopyFields() {
    ['webhook-url', 'verify-token'].forEach(function (id) {
      var box = $(id);
      box.style.height = 'auto';
      box.style.height = box.scrollHeight + 2 + 'px';
    });
  }

  function when(iso) {
    if (!iso) return '—';
    var d = new Date(iso);
    return isNaN(d.getTime())
      ? String(iso)
      : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function text(id, value) {
    $(id).textContent = value;
  }

  function setLink(a, href, label) {
    // Only links Instagram's own hosts: the values come from the server, but a link is a link.
    a.href = /^https:\/\/(www\.instagram\.com|ig\.me)\//.test(href) ? href : '#';
    a.textContent = label;
  }

  function safeFileName(s) {
    return String(s).replace(/[^A-Za-z0-9._-]/g, '_');
  }

  // ---- copy ------------------------------------------------------------------------------------------------

  function copyFrom(input, button) {
    var value = input.value;
    var done = function (ok) {
      $('copy-status').textContent = ok ? 'Copied.' : 'Press Ctrl+C (or ⌘C) to copy.';
      if (ok) {
        var label = button.firstChild;
        label.textContent = 'Copied';
        setTimeout(function () {
          label.textContent = 'Copy';
        }, 1500);
      } else {
        input.focus();
        input.select();
      }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(
        function () {
          done(true);
        },
        function () {
          done(legacyCopy(input));
        },
      );
    } else {
      done(legacyCopy(input));
    }
  }

  /** For plain-http hosts and older browsers, where navigator.clipboard is missing. */
  function legacyCopy(input) {
    try {
      input.focus();
      input.select();
      input.setSelectionRange(0, input.value.length);
      return document.execCommand('copy');
    } catch (_e) {
      return false;
    }
  }

  // ---- disconnect ------------------------------------------------------------------------------------------

  function askDisconnect() {
    $('disconnect-start').hidden = true;
    $('disconnect-confirm').hidden = false;
    $('disconnect-no').focus();
  }

  function cancelDisconnect() {
    $('disconnect-confirm').hidden = true;
    $('disconnect-start').hidden = false;
  }

  function onDisconnect() {
    var who = (state.connected && state.connected.who) || ids();
    if (!who) return;
    var yes = $('disconnect-yes');
    yes.disabled = true;
    pageAlert.hidden = true;
    call(who, 'POST', 'disconnect', '{}')
      .then(function (res) {
        if (res.status === 200 && res.body && res.body.success) {
          showForm();
          return;
        }
        showPageAlert(PAGE_MESSAGES[res.status] || FALLBACK_MESSAGE);
      })
      .catch(function () {
        showPageAlert(NETWORK_MESSAGE);
      })
      .then(function () {
        yes.disabled = false;
      });
  }

  function showForm() {
    state.connected = null;
    $('qr-image').removeAttribute('src');
    $('verify-token').value = '';
    connectedView.hidden = true;
    formView.hidden = false;
    $('form-title').setAttribute('tabindex', '-1');
    $('form-title').focus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
