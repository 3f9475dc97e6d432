// chatcrm console: pick a user, chat with the bot as them, watch their pushes arrive.
// Plain DOM, no framework. Every text from the server is set with textContent or as a text node,
// never parsed as HTML, so no message can inject markup.
(function () {
  "use strict";

  var POLL_MS = 3000;
  var KEEP = 200; // chat entries kept per user in this browser session

  var TEXT = {
    zh: {
      title: "chatcrm 控制台",
      hint: "本地试用：无需企业微信、钉钉或飞书账号",
      user: "用户",
      loading: "加载中…",
      chat: "和机器人对话",
      placeholder: "输入消息，Enter 发送，Shift+Enter 换行",
      send: "发送",
      pushes: "收到的推送",
      pushesHint: "提醒、日报和线索通知会出现在这里（每 3 秒刷新）",
      try: "试试这些",
      tryHint: "点一下放进输入框，改一改再发送",
      otherLang: "English",
      empty: "还没有消息。从右边挑一个例子试试。",
      noPushes: "还没有推送。设个提醒试试：提醒 10分钟后 给海尔打电话",
      waiting: "…",
      offline: "连接中断，重试中",
      noUsers: "还没有用户。运行 chatcrm demo 生成演示数据，或用 chatcrm users add 添加用户，然后刷新本页。",
      usersFailed: "无法加载用户",
      error: "出错了",
      netError: "网络错误，请重发",
      roles: { rep: "销售", manager: "经理", admin: "管理员" },
      image: "图片"
    },
    en: {
      title: "chatcrm console",
      hint: "Try the bot locally: no WeCom, DingTalk or Feishu account needed",
      user: "User",
      loading: "Loading…",
      chat: "Chat with the bot",
      placeholder: "Type a message; Enter sends, Shift+Enter for a new line",
      send: "Send",
      pushes: "Pushes received",
      pushesHint: "Reminders, digests and lead notices arrive here (checked every 3 s)",
      try: "Try these",
      tryHint: "Click one to put it in the input, edit, then send",
      otherLang: "中文",
      empty: "No messages yet. Pick an example on the right.",
      noPushes: "No pushes yet. Set a reminder: remind in 10 minutes call Haier",
      waiting: "…",
      offline: "Connection lost, retrying",
      noUsers: "No users yet. Run chatcrm demo for demo data, or chatcrm users add, then reload.",
      usersFailed: "Cannot load users",
      error: "Error",
      netError: "Network error, please resend",
      roles: { rep: "Rep", manager: "Manager", admin: "Admin" },
      image: "Image"
    }
  };

  var $ = function (id) { return document.getElementById(id); };
  var $select, $messages, $input, $send, $pushList, $pushNew, $pushStatus, $examples, $notice, $who;

  var lang = "zh";
  var users = [];
  var current = "";       // selected handle
  var histories = {};     // handle -> [{kind: "me"|"bot"|"error", text}]
  var pushState = {};     // handle -> {last, items: [push], fresh: {id: true}}
  var unseen = 0;         // pushes arrived since the user was picked
  var pollTimer = null;
  var pollGen = 0;        // bumps on user switch so a stale poll is dropped
  var sending = false;

  function t(key) { return TEXT[lang][key]; }

  function store(key, value) {
    try { if (value === undefined) return sessionStorage.getItem(key); sessionStorage.setItem(key, value); }
    catch (_) { /* storage disabled: keep it in memory only */ }
    return null;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // The bot's light markdown as DOM nodes: "**bold**" and "- " list lines; other lines as they are.
  function rich(text) {
    var box = el("div", "rich");
    var list = null;
    String(text).split(/\r?\n/).forEach(function (line) {
      var item = /^\s*[-•]\s+(.*)$/.exec(line);
      if (item) {
        if (!list) { list = el("ul"); box.appendChild(list); }
        list.appendChild(inline(el("li"), item[1]));
      } else {
        list = null;
        box.appendChild(inline(el("p"), line));
      }
    });
    return box;
  }

  function inline(parent, line) {
    var parts = line.split(/\*\*(.+?)\*\*/); // odd indexes are the bold parts
    parts.forEach(function (part, i) {
      if (!part) return;
      parent.appendChild(i % 2 ? el("strong", null, part) : document.createTextNode(part));
    });
    return parent;
  }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso || "");
    var locale = lang === "zh" ? "zh-CN" : "en-GB";
    return d.toLocaleString(locale, { month: "short", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" });
  }

  // ---- Chat -------------------------------------------------------------------------------

  function entryNode(e) {
    if (e.kind === "error") return el("div", "sys", e.text);
    var row = el("div", "row " + e.kind);
    var bubble = el("div", "bubble");
    if (e.kind === "me") bubble.textContent = e.text; else bubble.appendChild(rich(e.text));
    row.appendChild(bubble);
    return row;
  }

  function renderChat() {
    $messages.textContent = "";
    if (!current) return;
    var list = histories[current] || [];
    if (!list.length) { $messages.appendChild(el("div", "empty", t("empty"))); return; }
    list.forEach(function (e) { $messages.appendChild(entryNode(e)); });
    $messages.scrollTop = $messages.scrollHeight;
  }

  function addEntry(handle, entry) {
    var list = histories[handle] = histories[handle] || [];
    list.push(entry);
    if (list.length > KEEP) list.splice(0, list.length - KEEP);
    store("chatcrm.console.history", JSON.stringify(histories));
    if (handle !== current) return;
    var empty = $messages.querySelector(".empty");
    if (empty) empty.remove();
    $messages.appendChild(entryNode(entry));
    $messages.scrollTop = $messages.scrollHeight;
  }

  function newMessageId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c-" + Date.now() + "-" + Math.random().toString(36).slice(2);
  }

  // fetch JSON; a non-2xx answer throws with the server's {code, message}.
  function api(url, opts) {
    return fetch(url, opts).then(function (res) {
      return res.text().then(function (body) {
        var data = null;
        try { data = body ? JSON.parse(body) : null; } catch (_) { /* not JSON */ }
        if (!res.ok) {
          var err = new Error((data && data.message) || body || res.statusText);
          err.server = true;
          throw err;
        }
        return data || {};
      });
    });
  }

  function setSending(on) {
    sending = on;
    $send.disabled = on || !current;
  }

  function send() {
    var text = $input.value.trim();
    var handle = current;
    if (!text || sending || !handle) return;
    addEntry(handle, { kind: "me", text: text });
    $input.value = "";
    setSending(true);
    var pending = el("div", "row bot pending");
    pending.appendChild(el("div", "bubble", t("waiting")));
    $messages.appendChild(pending);
    $messages.scrollTop = $messages.scrollHeight;
    api("/console/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: handle, text: text, message_id: newMessageId() })
    }).then(function (data) {
      pending.remove();
      addEntry(handle, { kind: "bot", text: data.reply == null ? "" : String(data.reply) });
      pollSoon(); // a command may have queued a push (the funnel chart, a lead notice)
    }).catch(function (err) {
      pending.remove();
      addEntry(handle, { kind: "error", text: err.server ? t("error") + ": " + err.message : t("netError") });
    }).then(function () {
      setSending(false);
      $input.focus();
    });
  }

  // ---- Pushes -----------------------------------------------------------------------------

  function pushNode(p, handle, fresh) {
    var li = el("li", "push" + (fresh ? " fresh" : ""));
    li.dataset.id = p.id;
    li.appendChild(el("time", null, formatTime(p.created_at)));
    li.appendChild(rich(p.text));
    if (p.has_image) {
      var src = "/console/pushes/" + encodeURIComponent(p.id) + "/image?user=" + encodeURIComponent(handle);
      var a = el("a");
      a.href = src; a.target = "_blank"; a.rel = "noopener";
      var img = el("img");
      img.src = src; img.alt = p.text || t("image"); img.loading = "lazy";
      a.appendChild(img);
      li.appendChild(a);
    }
    return li;
  }

  function renderPushes() {
    $pushList.textContent = "";
    var s = pushState[current];
    if (!s) return;
    if (!s.items.length) { $pushList.appendChild(el("li", "empty", t("noPushes"))); return; }
    // Newest first.
    for (var i = s.items.length - 1; i >= 0; i--) {
      var p = s.items[i];
      $pushList.appendChild(pushNode(p, current, s.fresh[p.id]));
    }
  }

  function showUnseen() {
    $pushNew.hidden = unseen === 0;
    $pushNew.textContent = unseen > 99 ? "99+" : String(unseen);
  }

  function poll() {
    var handle = current, gen = pollGen;
    if (!handle) return;
    var s = pushState[handle] = pushState[handle] || { last: 0, items: [], fresh: {}, loaded: false };
    api("/console/pushes?user=" + encodeURIComponent(handle) + "&after=" + s.last).then(function (data) {
      if (gen !== pollGen) return;
      $pushStatus.textContent = "";
      var got = data.pushes || [];
      if (got.length) s.fresh = {}; // highlight only the latest arrivals
      got.forEach(function (p) {
        if (p.id <= s.last) return;
        s.last = p.id;
        s.items.push(p);
        // The first load is history; later ones are news.
        if (s.loaded) { s.fresh[p.id] = true; unseen++; }
      });
      var more = got.length >= 100; // a page is 100: fetch the rest right away
      if (!more) s.loaded = true;
      if (got.length || !$pushList.firstChild) { renderPushes(); showUnseen(); }
      schedule(more ? 0 : POLL_MS, gen);
    }).catch(function () {
      if (gen !== pollGen) return;
      $pushStatus.textContent = t("offline");
      schedule(POLL_MS, gen);
    });
  }

  function schedule(ms, gen) {
    if (gen !== pollGen) return;
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  function pollSoon() { schedule(300, pollGen); }

  // ---- Users, examples, language -----------------------------------------------------------

  function userLabel(u) {
    var role = t("roles")[u.role] || u.role;
    return (u.name || u.handle) + " (" + u.handle + ") · " + [role, u.team].filter(Boolean).join(" · ");
  }

  function fillUsers() {
    $select.textContent = "";
    users.forEach(function (u) {
      var o = el("option", null, userLabel(u));
      o.value = u.handle;
      $select.appendChild(o);
    });
    $select.value = current;
  }

  function selectUser(handle) {
    current = handle;
    try { localStorage.setItem("chatcrm.console.user", handle); } catch (_) { /* ignore */ }
    var u = users.filter(function (x) { return x.handle === handle; })[0];
    $who.textContent = u ? "· " + (u.name || u.handle) : "";
    pollGen++;
    clearTimeout(pollTimer);
    unseen = 0;
    showUnseen();
    $pushStatus.textContent = "";
    renderChat();
    renderPushes();
    setSending(false);
    poll();
    $input.focus();
  }

  function loadUsers() {
    api("/console/users").then(function (data) {
      users = data.users || [];
      if (!users.length) {
        $notice.textContent = t("noUsers");
        $notice.hidden = false;
        $select.textContent = "";
        return;
      }
      var saved = null;
      try { saved = localStorage.getItem("chatcrm.console.user"); } catch (_) { /* ignore */ }
      current = users.some(function (u) { return u.handle === saved; }) ? saved : users[0].handle;
      fillUsers();
      $select.disabled = false;
      selectUser(current);
    }).catch(function (err) {
      $notice.textContent = t("usersFailed") + ": " + err.message;
      $notice.hidden = false;
    });
  }

  function loadExamples() {
    var want = lang;
    api("/console/examples?lang=" + want).then(function (data) {
      if (want !== lang) return;
      $examples.textContent = "";
      (data.examples || []).forEach(function (x) {
        var li = el("li");
        li.appendChild(el("span", "what", x.summary));
        var b = el("button", "example", x.text);
        b.type = "button";
        b.title = x.usage;
        b.addEventListener("click", function () { $input.value = x.text; $input.focus(); });
        li.appendChild(b);
        $examples.appendChild(li);
      });
    }).catch(function () { /* the list is a help, not needed to chat */ });
  }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (n) {
      n.textContent = t(n.getAttribute("data-i18n"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-placeholder]"), function (n) {
      n.placeholder = t(n.getAttribute("data-i18n-placeholder"));
    });
    var other = $("lang");
    other.textContent = t("otherLang");
    other.lang = lang === "zh" ? "en" : "zh-CN";
    if (users.length) fillUsers();
    renderChat();
    renderPushes();
    loadExamples();
  }

  function start() {
    $select = $("user-select"); $messages = $("messages"); $input = $("input"); $send = $("send");
    $pushList = $("push-list"); $pushNew = $("push-new"); $pushStatus = $("push-status");
    $examples = $("examples"); $notice = $("notice"); $who = $("chat-who");

    var asked = new URLSearchParams(location.search).get("lang");
    var saved = null;
    try { saved = localStorage.getItem("chatcrm.console.lang"); } catch (_) { /* ignore */ }
    lang = TEXT[asked] ? asked : TEXT[saved] ? saved : "zh";
    try { histories = JSON.parse(store("chatcrm.console.history") || "{}") || {}; } catch (_) { histories = {}; }

    $select.addEventListener("change", function () { selectUser($select.value); });
    $("compose").addEventListener("submit", function (e) { e.preventDefault(); send(); });
    $input.addEventListener("keydown", function (e) {
      // Enter sends, unless an input method is composing (Chinese pinyin input).
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        send();
      }
    });
    $("lang").addEventListener("click", function () {
      lang = lang === "zh" ? "en" : "zh";
      try { localStorage.setItem("chatcrm.console.lang", lang); } catch (_) { /* ignore */ }
      applyLang();
    });
    // The "new" count is cleared by a click in the panel (a hover is too easy to trigger).
    $("push-list").addEventListener("click", function () { unseen = 0; showUnseen(); });

    applyLang();
    loadUsers();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
