// Backchannel's local web app: the one script it serves (no libraries, nothing fetched from
// elsewhere). Every page works without it; it adds live updates over server-sent events,
// drafts that survive a reload, sending notes without a reload, copying, reading a file into
// a text field, and a hint on passphrase strength. It never reads or stores a passphrase or a
// probe's private input.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const status = () => $("#connection");

  function say(text) {
    const s = status();
    if (s) s.textContent = text;
  }

  // Times: the server writes UTC; show the reader's own time.
  function localTimes(root) {
    agoTimes(root);
    $$("time[datetime]:not([data-ago])", root).forEach((t) => {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    });
  }

  // "3 minutes ago": kept current while the page is open (the title says the moment).
  function agoTimes(root) {
    const now = Date.now();
    $$("time[data-ago]", root).forEach((t) => {
      const at = new Date(t.getAttribute("datetime")).getTime();
      if (isNaN(at)) return;
      const s = Math.max(0, Math.floor((now - at) / 1000));
      const plural = (n, unit) => (n === 1 ? `1 ${unit} ago` : `${n} ${unit}s ago`);
      t.textContent = s < 5 ? "just now"
        : s < 60 ? plural(s, "second")
          : s < 3600 ? plural(Math.floor(s / 60), "minute")
            : s < 86400 ? plural(Math.floor(s / 3600), "hour")
              : plural(Math.floor(s / 86400), "day");
      t.title = new Date(at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
    });
  }

  // Drafts: every field marked data-draft is kept in this browser until its form is sent.
  const draftKey = (el) => "backchannel-draft:" + location.port + ":" + el.dataset.draft;
  const PENDING = "backchannel-pending";

  function pending() {
    try { return JSON.parse(sessionStorage.getItem(PENDING) || "[]"); } catch (e) { return []; }
  }

  function drafts(root) {
    // Forms sent on the previous page: their drafts go, unless the form came back with a problem.
    const sent = pending();
    sessionStorage.removeItem(PENDING);
    sent.forEach((key) => {
      const kept = $$("[data-draft]", root).some((el) => draftKey(el) === key && el.form && el.form.dataset.error);
      if (!kept) localStorage.removeItem(key);
    });
    $$("[data-draft]", root).forEach((el) => {
      const saved = localStorage.getItem(draftKey(el));
      if (saved !== null && !el.value) el.value = saved;
      el.addEventListener("input", () => {
        if (el.value) localStorage.setItem(draftKey(el), el.value);
        else localStorage.removeItem(draftKey(el));
      });
    });
    $$("form", root).forEach((form) => {
      if (form.dataset.send || form.dataset.upload) return;
      form.addEventListener("submit", () => {
        const keys = pending().concat($$("[data-draft]", form).map(draftKey));
        sessionStorage.setItem(PENDING, JSON.stringify(keys));
      });
    });
  }

  // Sending a note without leaving the page; it shows up through the event stream.
  function compose() {
    const form = $("form[data-send]");
    if (!form) return;
    const text = $("textarea[name=text]", form);
    const problem = $("#compose-problem", form);
    const button = $("button[type=submit]", form);
    text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      problem.hidden = true;
      button.disabled = true;
      try {
        const r = await fetch(form.action, {
          method: "POST",
          headers: { "x-requested-with": "fetch" },
          body: new URLSearchParams(new FormData(form)),
        });
        if (r.ok) {
          localStorage.removeItem(draftKey(text));
          text.value = "";
          text.focus();
        } else {
          problem.textContent = await r.text();
          problem.hidden = false;
        }
      } catch (err) {
        problem.textContent = "The app cannot be reached right now. Your note is kept here; send it again in a moment.";
        problem.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
  }

  // The live part of a page is drawn again when told, unless something in it is being filled
  // in (then once the reader leaves it). A nudge during a refresh runs another one after it.
  let refreshing = false;
  let again = false;
  let stale = false;
  const edited = (el) =>
    el.tagName === "SELECT"
      ? Array.from(el.options).some((o) => o.selected !== o.defaultSelected)
      : el.type === "checkbox" || el.type === "radio"
        ? el.checked !== el.defaultChecked
        : el.type !== "hidden" && el.value !== el.defaultValue;
  async function refreshLive(quiet) {
    const live = $("#live");
    if (!live) return;
    if (refreshing) { if (quiet !== true) again = true; return; }
    // Busy: something in it is being filled in or has the focus, or it shows a problem the
    // reader must see.
    const busy = () =>
      $(".problem:not([hidden])", live) !== null ||
      $$("input, textarea, select, button, a[href]", live).some((el) => el === document.activeElement) ||
      $$("input, textarea, select", live).some((el) => edited(el));
    const wait = () => {
      stale = true;
      // A periodic refresh (times, states) waits without a word.
      if (quiet !== true) say("Something changed; it shows once you finish here.");
    };
    if (busy()) return wait();
    refreshing = true;
    stale = false;
    try {
      // The page's own address: after a form, the address bar may show where it was posted.
      const r = await fetch(live.dataset.src || location.href, { headers: { "x-requested-with": "fetch" } });
      if (r.ok) {
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const fresh = $("#live", doc);
        // The reader may have started typing while this was on its way.
        if (busy()) wait();
        else if (fresh) {
          live.replaceChildren(...fresh.childNodes);
          localTimes(live);
        }
        // Lines elsewhere on the page that say the same state (a channel's phase).
        $$("[data-live][id]").forEach((el) => {
          const other = doc.getElementById(el.id);
          if (other) el.replaceChildren(...other.childNodes);
        });
      }
    } catch (e) {
      // The stream's own reconnection says so.
    } finally {
      refreshing = false;
      if (again) { again = false; refreshLive(); }
    }
  }
  document.addEventListener("focusout", (e) => {
    const live = $("#live");
    if (stale && live && live.contains(e.target)) setTimeout(refreshLive, 0);
  });

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  // The event stream: entries for a conversation, a nudge for other pages.
  let backoff = 500;
  let lost = false;
  function stream() {
    const timeline = $("#timeline");
    const url = timeline
      ? "/events?c=" + encodeURIComponent(timeline.dataset.name) + "&after=" + timeline.dataset.count
      : "/events";
    const es = new EventSource(url);
    es.addEventListener("hello", () => {
      backoff = 500;
      document.documentElement.dataset.live = "on";
      say(lost ? "Reconnected." : "");
      lost = false;
      // What changed between drawing the page and subscribing is drawn now.
      if (!timeline) refreshLive();
    });
    es.addEventListener("link", (e) => say(e.data));
    es.addEventListener("locked", () => {
      es.close();
      location.assign("/?next=" + encodeURIComponent(location.pathname + location.search));
    });
    es.addEventListener("changed", () => refreshLive());
    // Our notes' delivery, as it moves on (queued, sent, delivered, not confirmed).
    es.addEventListener("delivery", (e) => {
      JSON.parse(e.data).forEach(({ n, html }) => {
        const old = $(`#e${n} .delivery`);
        if (!old) return;
        const holder = document.createElement("template");
        holder.innerHTML = html;
        old.replaceWith(holder.content);
      });
    });
    // A hotline's line: every member's hosts, up or down.
    es.addEventListener("line", (e) => {
      const old = $("#line");
      if (!old) return;
      const holder = document.createElement("template");
      holder.innerHTML = e.data;
      const fresh = holder.content.firstElementChild;
      if (fresh) old.replaceChildren(...fresh.childNodes);
    });
    es.addEventListener("entries", (e) => {
      const data = JSON.parse(e.data);
      const stick = nearBottom();
      const holder = document.createElement("template");
      holder.innerHTML = data.html;
      localTimes(holder.content);
      if (data.from === 0) timeline.replaceChildren(holder.content);
      else timeline.append(holder.content);
      timeline.dataset.count = String(data.count);
      const empty = $("#empty");
      if (empty && data.count > 0) empty.remove();
      if (stick) window.scrollTo(0, document.body.scrollHeight);
    });
    es.onerror = () => {
      lost = true;
      document.documentElement.dataset.live = "lost";
      say("The connection to the app was lost; reconnecting…");
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(stream, backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    };
  }

  // Copy buttons (an invitation).
  function copying() {
    $$("button[data-copy]").forEach((b) => {
      b.addEventListener("click", async () => {
        const field = document.getElementById(b.dataset.copy);
        try {
          await navigator.clipboard.writeText(field.value);
        } catch (e) {
          field.select();
          document.execCommand("copy");
        }
        say("Copied.");
      });
    });
  }

  // A file read into a text field (a draft, a proposal).
  function files() {
    $$("input[type=file][data-into]").forEach((input) => {
      input.addEventListener("change", async () => {
        const file = input.files && input.files[0];
        if (!file) return;
        const target = document.getElementById(input.dataset.into);
        target.value = await file.text();
        target.dispatchEvent(new Event("input"));
      });
    });
  }

  // An agreement's zip, sent as it is; the answer replaces the page's content.
  function uploads() {
    $$("form[data-upload]").forEach((form) => {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const input = $("input[type=file]", form);
        const problem = $(".problem[hidden], .problem", form);
        const file = input.files && input.files[0];
        if (!file) return;
        try {
          const r = await fetch(form.action, { method: "POST", headers: { "content-type": "application/zip" }, body: file });
          const doc = new DOMParser().parseFromString(await r.text(), "text/html");
          const main = $("main", doc);
          if (main) {
            $("main").replaceChildren(...main.childNodes);
            init($("main"));
            const verdict = $(".verdict");
            if (verdict) verdict.focus();
          }
        } catch (err) {
          problem.textContent = "The app cannot be reached right now; try again in a moment.";
          problem.hidden = false;
        }
      });
    });
  }

  // A rough hint, never a rule: long passphrases of unrelated words are strong.
  function strength() {
    $$("input[data-strength]").forEach((input) => {
      const hint = document.getElementById(input.dataset.strength);
      const initial = hint.textContent;
      input.addEventListener("input", () => {
        const p = input.value;
        if (!p) { hint.textContent = initial; return; }
        let pool = 0;
        if (/[a-z]/.test(p)) pool += 26;
        if (/[A-Z]/.test(p)) pool += 26;
        if (/[0-9]/.test(p)) pool += 10;
        if (/[^A-Za-z0-9]/.test(p)) pool += 33;
        const words = p.trim().split(/\s+/).filter((w) => w.length >= 3).length;
        let bits = Math.max(p.length * Math.log2(pool || 1) * 0.5, words * 11);
        if (/(.)\1\1/.test(p) || new Set(p).size < 6) bits = Math.min(bits, 30);
        hint.textContent = bits < 40
          ? "Weak: easy to guess. Add more words that do not belong together."
          : bits < 60
            ? "Fair: one or two more unrelated words would make it strong."
            : "Strong. Keep it somewhere safe: nobody can recover it for you.";
      });
    });
  }

  function init(root) {
    localTimes(root);
    drafts(root);
    copying();
    files();
    uploads();
    strength();
  }

  document.addEventListener("DOMContentLoaded", () => {
    init(document);
    compose();
    const problem = $(".problem[role=alert]:not([hidden])");
    if (problem) problem.focus();
    else if ($("[data-focus]")) $("[data-focus]").focus();
    // Parts that change with time alone (states computed from when a host was last heard).
    const live = $("#live[data-every]");
    if (live) setInterval(() => refreshLive(true), Number(live.dataset.every) || 5000);
    setInterval(() => agoTimes(document), 1000);
    // Only an unlocked party's pages (they have the main navigation) follow its events.
    if ($("nav[aria-label=Main]")) stream();
  });
})();
