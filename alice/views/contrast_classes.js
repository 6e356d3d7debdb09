// ALICE's `contrast_classes` question: "How would you differentiate P and Q?" — examples of both classes
// side by side, a sentence, and the parts the method's parser recognises in it as it is typed.
import { h, pixelImage, notice } from "/static/kit.js";

export function render(root, q, api) {
  const v = q.view;
  const [P, Q] = v.classes;
  const max = v.max_chars || 2000;
  const message = notice();
  const galleries = v.classes.map((c) => h("section.gallery", { "data-class": String(c.class) },
    h("h3", { text: c.name }),
    h("div.thumbs", {}, ...(c.images.length ? c.images.map((im) => pixelImage(im, thumbSize(v), c.name))
      : [h("p.muted", { text: "(no examples)" })]))));

  const area = h("textarea.sentence", { rows: 3, maxlength: String(max),
    placeholder: `e.g. “${P.name} has a … while ${Q.name} has a …”`, oninput: () => { message.set(""); api.draft.set(area.value); schedule(); } });
  area.value = typeof q.answer === "string" ? q.answer : api.draft.get() || "";
  const parts = h("div.parts", { "aria-live": "polite" });
  const warning = h("p.parse-warning", { role: "status", hidden: true,
    text: "No part recognised: the model cannot ground this sentence; you may still submit it." });
  const count = h("span.muted.count");
  const submitBtn = h("button.submit.primary", { type: "button", onclick: send }, "Submit ", h("kbd", { text: "Ctrl+Enter" }));

  root.append(h("div.contrast-view", {},
    h("div.galleries", {}, ...galleries),
    h("h2", {}, "How would you differentiate ", h("strong", { text: P.name }), " and ", h("strong", { text: Q.name }), "?"),
    area,
    h("div.parse-row", {}, h("span.muted", { text: "Recognised parts: " }), parts, count),
    warning,
    v.parts?.length ? h("p.known-parts.muted", {}, "The parser knows these parts: ",
      ...v.parts.map((p) => h("span.known", { text: p }))) : null,
    message,
    h("div.actions", {}, submitBtn)));
  area.focus({ preventScroll: true });

  let timer = 0, asked = 0;
  function schedule() {
    count.textContent = area.value.length > max * 0.8 ? `${area.value.length} / ${max}` : "";
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  }
  async function update() {
    const text = area.value;
    const mine = ++asked;
    const found = text.trim() ? (await api.preview({ text }))?.parts || [] : [];
    if (mine !== asked) return; // a newer sentence was sent meanwhile
    parts.replaceChildren(...found.map((p) => h("span.part", { text: p })));
    if (!found.length) parts.append(h("span.muted.none", { text: text.trim() ? "none" : "—" }));
    warning.hidden = !(text.trim() && !found.length);
  }
  update();

  async function send() {
    const text = area.value.trim();
    if (!text) {
      message.set("Write a sentence that says how the two classes differ.");
      area.focus();
      return;
    }
    submitBtn.disabled = true;
    await api.submit(text);
    submitBtn.disabled = false;
  }

  return {
    keydown(e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { send(); return true; }
      return false;
    },
  };
}

// Thumbnails: larger when there are few.
function thumbSize(v) {
  const n = Math.max(...v.classes.map((c) => c.images.length), 1);
  return n <= 2 ? 160 : n <= 4 ? 120 : n <= 9 ? 96 : 72;
}
