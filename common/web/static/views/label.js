// The `label` question: which class is this item? One button per class, keys 0–9 then a–z.
import { h, pixelImage, modified, typing } from "/static/kit.js";

export const keyOf = (i) => (i < 10 ? String(i) : i < 36 ? String.fromCharCode(97 + i - 10) : "");

/** The item of a view: {image} large and pixelated, {text: [parts]} or {features}. */
export function itemBlock(item, target = 320) {
  if (item?.image) return h("div.item.item-image", {}, pixelImage(item.image, target, "the item"));
  if (item?.text) {
    return h("div.item.item-text", {}, ...item.text.map((t, n) =>
      h("p", {}, item.text.length > 1 && h("span.part-name", { text: n === 0 ? "text" : "text b" }), t)));
  }
  if (item?.features) {
    const f = Array.isArray(item.features) ? item.features : [item.features];
    return h("div.item.item-features", {}, h("code", { text: f.map((v) => (typeof v === "number" ? +v.toFixed(4) : v)).join(", ") }));
  }
  return h("div.item", { text: "(this item has nothing to show)" });
}

/** The model's top classes with their probabilities, as bars (null when the view has none: hidden or unknown). */
export function predictionsBlock(predictions) {
  return predictions?.length ? h("div.predictions", {},
    h("h3", { text: "The model thinks" }),
    ...predictions.map((p) => h("div.pred", { title: `${(p.p * 100).toFixed(1)}%` },
      h("span.pred-name", { text: p.name }),
      h("span.bar", {}, h("span.fill", { style: { width: `${Math.max(1, p.p * 100)}%` } })),
      h("span.pct", { text: `${(p.p * 100).toFixed(0)}%` })))) : null;
}

export function render(root, q, api) {
  const v = q.view;
  let sending = false;
  const buttons = v.classes.map((name, i) => h("button.class", {
    type: "button", "data-class": String(i), title: keyOf(i) ? `key ${keyOf(i)}` : undefined,
    onclick: () => choose(i),
  }, keyOf(i) && h("kbd", { text: keyOf(i) }), h("span.name", { text: name })));
  const skip = v.skippable && h("button.skip", { type: "button", title: "key ? or Esc", onclick: () => choose("skip") },
    h("kbd", { text: "?" }), "skip / don't know");

  if (q.answer !== undefined && q.answer !== null && buttons[q.answer]) buttons[q.answer].classList.add("previous");
  if (q.answered && q.answer === null && skip) skip.classList.add("previous");

  const preds = predictionsBlock(v.predictions);

  root.append(h("div.label-view", {},
    h("div.label-top", {}, itemBlock(v.item),
      h("div.label-side", {},
        h("h2", { text: "Which class is this?" }),
        preds,
        v.why && h("p.why", {}, h("span.muted", { text: "Why it is asked: " }), v.why),
        h("p.hint.muted", { text: "Press the key shown on a class, or click it." }))),
    h("div.classes", {}, ...buttons, skip || null)));

  async function choose(answer) {
    if (sending) return;
    sending = true;
    const btn = answer === "skip" ? skip : buttons[answer];
    btn?.classList.add("chosen");
    root.classList.add("sending");
    const r = await api.submit(answer);
    if (!r.ok) {
      sending = false;
      btn?.classList.remove("chosen");
      root.classList.remove("sending");
    }
  }

  return {
    keydown(e) {
      if (modified(e) || typing(e)) return false;
      if (skip && (e.key === "?" || e.key === "Escape")) { choose("skip"); return true; }
      const k = e.key.toLowerCase();
      const i = v.classes.findIndex((_, c) => keyOf(c) === k);
      if (k.length === 1 && i >= 0) { choose(i); return true; }
      return false;
    },
  };
}
