// Messages of the static scripts in the page's language.
//
// The server renders <html lang="zh-CN|en"> in the request's language (the `?lang=`
// switch, the `sv_lang` cookie, Accept-Language, then `web.default_language`). This
// script loads /static/i18n/<lang>.json (same keys in every language; a test holds it)
// and offers:
//   svI18n.ready        a promise, resolved once the messages are loaded;
//   svI18n.t(key, params)  the message, with {name} parameters filled in (the key
//                          itself if missing, so a gap shows instead of failing);
//   svI18n.lang         the page's language;
//   svI18n.time(iso)    a time as a person reads it, in the page's zone
//                       (<body data-timezone>, `web.timezone`), e.g. "2026-11-30 16:00".
// Load it before the page's own script (both with `defer`, in that order).
"use strict";

(function () {
  const lang = document.documentElement.lang === "en" ? "en" : "zh-CN";
  let messages = {};
  const ready = fetch(`/static/i18n/${lang}.json`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : {}))
    .then((m) => { messages = m; })
    .catch(() => { messages = {}; });

  function t(key, params) {
    const text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    return text.replace(/\{(\w+)\}/g, (all, name) => (params && name in params ? String(params[name]) : all));
  }

  function time(iso) {
    if (!iso) return "";
    const zone = (document.body && document.body.dataset.timezone) || "Asia/Shanghai";
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(iso));
    const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  window.svI18n = { ready, t, lang, time };
})();
