/*
 * The demo's visitor page: plain JavaScript, no build step (CSP: script-src 'self').
 * Sending POSTs /demo/visitor/messages (the demo turns it into Meta's signed webhook); the thread and the
 * stored chat are read from GET /demo/visitor/messages every second. The visitor id stays in
 * sessionStorage so a reload keeps the conversation.
 */
(function () {
  'use strict';

  var KEY = 'demoVisitor';
  var visitor = readVisitor();
  var waitingSince = 0;

  function $(id) {
    return document.getElementById(id);
  }

  function readVisitor() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || 'null');
    } catch (_e) {
      return null;
    }
  }

  function keepVisitor(v) {
    visitor = v;
    try {
      sessionStorage.setItem(KEY, JSON.stringify(v));
    } catch (_e) {
      /* storage disabled: the visitor lasts as long as the page */
    }
    $('visitor-name').textContent = v ? '@' + v.username : 'a new visitor';
  }

  function say(text) {
    $('error').hidden = true;
    var body = { text: text };
    if (visitor) {
      body.userId = visitor.userId;
      body.username = visitor.username;
    }
    $('send').disabled = true;
    return fetch('/demo/visitor/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    })
      .then(function (res) {
        return res.json().then(function (json) {
          if (!res.ok) throw new Error((json.error && json.error.message) || 'The demo refused the message');
          keepVisitor({ userId: json.data.userId, username: json.data.username });
          waitingSince = Date.now();
          return refresh();
        });
      })
      .catch(function (err) {
        $('error').textContent = err.message || 'The demo could not be reached';
        $('error').hidden = false;
      })
      .finally(function () {
        $('send').disabled = false;
      });
  }

  function refresh() {
    if (!visitor) return Promise.resolve();
    return fetch('/demo/visitor/messages?userId=' + encodeURIComponent(visitor.userId))
      .then(function (res) {
        return res.ok ? res.json() : null;
      })
      .then(function (json) {
        if (json) render(json.data);
      })
      .catch(function () {
        /* the next poll tries again */
      });
  }

  function render(data) {
    var list = $('thread');
    list.textContent = '';
    data.messages.forEach(function (m) {
      var li = document.createElement('li');
      li.className = m.from;
      li.textContent = m.text;
      list.appendChild(li);
    });
    var last = data.messages[data.messages.length - 1];
    if (waitingSince && last && last.from === 'shop') waitingSince = 0;
    if (waitingSince && Date.now() - waitingSince < 30000) {
      var typing = document.createElement('li');
      typing.className = 'shop typing';
      typing.textContent = '@demo_shop is typing…';
      list.appendChild(typing);
    }
    $('empty').hidden = data.messages.length > 0;
    list.scrollTop = list.scrollHeight;
    if (data.chat) {
      $('chat-meta').textContent =
        data.chat.chatId + ' · ' + data.chat.status + ' · message_count ' + data.chat.messageCount;
      $('transcript').textContent = data.chat.transcript;
      $('transcript').hidden = false;
    }
  }

  $('say-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var text = $('text').value.trim();
    if (!text) return;
    $('text').value = '';
    say(text);
  });
  Array.prototype.forEach.call(document.querySelectorAll('.chip'), function (chip) {
    chip.addEventListener('click', function () {
      say(chip.textContent);
    });
  });
  $('new-visitor').addEventListener('click', function () {
    keepVisitor(null);
    try {
      sessionStorage.removeItem(KEY);
    } catch (_e) {
      /* nothing kept */
    }
    $('thread').textContent = '';
    $('empty').hidden = false;
    $('chat-meta').textContent = 'Nothing yet: the chat document appears with the first DM.';
    $('transcript').hidden = true;
  });

  keepVisitor(visitor);
  refresh();
  setInterval(refresh, 1000);
})();
