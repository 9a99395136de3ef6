// What a reader sees on one page of the built site (tests/test_website.py runs this in
// headless Chromium after MathJax has finished). Returns {kind: [finding, ...]}; an empty
// list for a kind means the page passes that check. Kinds:
//   raw-tex          TeX delimiters left in rendered text (outside code, pre and MathJax)
//   overflow         an element wider than its container and not inside its own scroll box
//   image-broken     an image that did not load
//   image-small      an image shown at under MIN_RATIO of its natural width
//   exercise-ref     a link to an exercise (its text "Exercise N" or its target an "ex-"
//                    label) that does not resolve to that exercise on the page it points
//                    to, or "Exercise N" typed by hand in the prose
//   search           not exactly one visible search box
// Called as checkPage(minRatio, narrow): narrow (the 420-px pass) only runs "overflow",
// against the viewport.
(function () {
  async function checkPage(minRatio, narrow) {
    const found = {"raw-tex": [], "overflow": [], "image-broken": [], "image-small": [],
                   "exercise-ref": [], "search": []};
    const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
    const describe = (el) => {
      let s = el.tagName.toLowerCase();
      if (el.id) s += "#" + el.id;
      if (el.classList.length) s += "." + Array.from(el.classList).slice(0, 2).join(".");
      const section = el.closest("section[id]");
      const text = (el.innerText || el.alt || "").replace(/\s+/g, " ").trim().slice(0, 60).toWellFormed();
      return s + (section ? " in #" + section.id : "") + (text ? ' "' + text + '"' : "");
    };
    const visible = (el) => {
      if (!el.getClientRects().length) return false;
      const st = getComputedStyle(el);
      return st.visibility !== "hidden" && st.display !== "none";
    };
    const scrollBox = (el, stop) => {
      // an ancestor (below stop) that scrolls horizontally: what is inside it is not cut off
      for (let a = el.parentElement; a && a !== stop; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        if (ox === "auto" || ox === "scroll") return a;
      }
      return null;
    };

    // --- overflow ---------------------------------------------------------------------
    const limit = narrow ? {left: 0, right: window.innerWidth} : article.getBoundingClientRect();
    const scope = narrow ? document.querySelectorAll(".bd-header, .bd-main *, .bd-footer *")
                         : article.querySelectorAll("*");
    if (narrow && document.documentElement.scrollWidth > window.innerWidth + 1) {
      found.overflow.push(`page is ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth}-px window`);
    }
    if (!narrow && article.scrollWidth > article.clientWidth + 1) {
      found.overflow.push(`article content is ${article.scrollWidth} px wide in a ${article.clientWidth}-px column`);
    }
    const reported = new Set();
    for (const el of scope) {
      if (!visible(el) || el.closest("mjx-assistive-mml, .bd-sidebar-primary, .bd-sidebar-secondary, dialog")) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.right <= limit.right + 1 && r.left >= limit.left - 1) continue;
      if (scrollBox(el, narrow ? null : article)) continue;
      // report the outermost offender only
      let parentReported = false;
      for (let a = el.parentElement; a; a = a.parentElement) if (reported.has(a)) { parentReported = true; break; }
      reported.add(el);
      if (parentReported) continue;
      found.overflow.push(`${describe(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} px, container ${Math.round(limit.left)}..${Math.round(limit.right)}`);
    }
    if (narrow) return found;

    // --- raw TeX ----------------------------------------------------------------------
    const skip = "code, pre, script, style, textarea, mjx-container, .MathJax, .highlight, " +
                 "[class*='widget-state'], .output.text_plain";
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    const tex = /\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{|\\(frac|mathbb|mathcal|operatorname|sum|lVert|tilde|hat)\b/;
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || el.closest(skip)) continue;
      const m = n.textContent.match(tex);
      if (m) {
        const i = m.index;
        found["raw-tex"].push(`${describe(el)}: "...${n.textContent.slice(Math.max(0, i - 30), i + 30).toWellFormed().replace(/\s+/g, " ")}..."`);
      }
    }

    // --- images -----------------------------------------------------------------------
    for (const img of article.querySelectorAll("img")) {
      if (!img.complete || img.naturalWidth === 0) {
        found["image-broken"].push(`${describe(img)} ${img.src.slice(0, 100)}`);
        continue;
      }
      if (!visible(img)) continue;               // a widget frame not shown now
      const w = img.getBoundingClientRect().width;
      if (w < minRatio * img.naturalWidth - 0.5) {
        found["image-small"].push(`${describe(img)} ${img.src.split("/").pop().slice(0, 40)}: ` +
          `shown ${Math.round(w)} px of ${img.naturalWidth} (${(w / img.naturalWidth).toFixed(2)})`);
      }
    }

    // --- exercise references ----------------------------------------------------------
    const exercisesOf = (doc) => {
      const map = new Map();
      for (const box of doc.querySelectorAll("div.exercise")) {
        const id = box.id || (box.querySelector("[id]") || {}).id;
        const title = (box.querySelector(".admonition-title") || {}).textContent || "";
        if (id) map.set(id, (title.match(/Exercise\s+(\d+)/) || [])[1]);
      }
      return map;
    };
    const pagesExercises = new Map([[location.pathname, exercisesOf(document)]]);
    for (const a of article.querySelectorAll("a[href]")) {
      const text = a.textContent.trim();
      const url = new URL(a.href, location.href);
      const frag = decodeURIComponent(url.hash.slice(1));
      const looksLikeExercise = /^Exercises?\s+\d+/.test(text) || /^ex-/.test(frag);
      if (!looksLikeExercise || a.closest(".exercise .admonition-title, .solution .admonition-title")) continue;
      if (url.origin !== location.origin) {
        found["exercise-ref"].push(`"${text}" links off the site (${url.href})`);
        continue;
      }
      if (!pagesExercises.has(url.pathname)) {
        const response = await fetch(url.pathname);
        const doc = new DOMParser().parseFromString(response.ok ? await response.text() : "", "text/html");
        pagesExercises.set(url.pathname, exercisesOf(doc));
      }
      const there = pagesExercises.get(url.pathname);
      const where = url.pathname === location.pathname ? "this page" : url.pathname;
      if (!there.has(frag)) {
        found["exercise-ref"].push(`"${text}" -> ${where}#${frag}: no exercise with that label there`);
        continue;
      }
      const num = (text.match(/(\d+)/) || [])[1];
      if (num && num !== there.get(frag)) {
        found["exercise-ref"].push(`"${text}" -> ${where}#${frag}, which is Exercise ${there.get(frag)}`);
      }
    }
    const prose = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let n = prose.nextNode(); n; n = prose.nextNode()) {
      const el = n.parentElement;
      if (!el || el.closest("a, code, pre, script, style, .admonition-title, mjx-container, .cell_output")) continue;
      const m = n.textContent.match(/\bExercises?\s+\d+/);
      if (m) found["exercise-ref"].push(`"${m[0]}" typed by hand in ${describe(el)}`);
    }

    // --- search box -------------------------------------------------------------------
    const boxes = Array.from(document.querySelectorAll(
      "button.search-button__button, form.bd-search, .search-button-field, input[type='search']"))
      .filter((el) => visible(el) && !el.closest(".search-button__wrapper, dialog"))
      .filter((el, i, all) => !all.some((o) => o !== el && o.contains(el)));
    if (boxes.length !== 1) {
      found.search.push(`${boxes.length} visible search boxes: ${boxes.map(describe).join("; ")}`);
    }
    return found;
  }
  window.__readerView = checkPage;
})();
