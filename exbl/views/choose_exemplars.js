// eXBL's `choose_exemplars` question: of these Grad-CAM explanations, pick one good and one bad.
import { h, pixelImage, notice } from "/static/kit.js";

const KEYS = "1234567890-="; // a card's key: press it, then g (good) or b (bad)

export function render(root, q, api) {
  const v = q.view;
  let good = q.answer?.good ?? null, bad = q.answer?.bad ?? null;
  const message = notice("hint", "status");
  const size = v.candidates.length > 8 ? 112 : 128; // two rows of four fit a laptop screen
  const cards = v.candidates.map((c, j) => {
    const goodBtn = h("button.good", { type: "button", "aria-pressed": "false", onclick: () => pick("good", c.item) }, "✓ good");
    const badBtn = h("button.bad", { type: "button", "aria-pressed": "false", onclick: () => pick("bad", c.item) }, "✗ bad");
    const card = h("figure.candidate", { "data-item": String(c.item) },
      h("div.pair", {},
        h("div.overlay", { title: "where the model looks (red)" }, pixelImage(c.overlay, size, "Grad-CAM overlay")),
        h("div.plain", { title: "the image" }, pixelImage(c.image, Math.round(size / 2), "the image"))),
      h("figcaption", {}, KEYS[j] ? h("kbd", { text: KEYS[j], title: `key ${KEYS[j]}, then g or b` }) : null,
        c.label ? h("span.tag", { text: c.label }) : null),
      h("div.choice", {}, goodBtn, badBtn));
    card.refresh = () => {
      const g = good === c.item, b = bad === c.item;
      card.classList.toggle("is-good", g);
      card.classList.toggle("is-bad", b);
      goodBtn.classList.toggle("selected", g);
      badBtn.classList.toggle("selected", b);
      goodBtn.setAttribute("aria-pressed", String(g));
      badBtn.setAttribute("aria-pressed", String(b));
    };
    return card;
  });
  const submitBtn = h("button.submit.primary", { type: "button", onclick: send }, "Submit");

  root.append(h("div.exemplars-view", {},
    h("h2", { text: "Which explanation is good, and which is bad?" }),
    h("p.muted", { text: "Red shows where the model looks (Grad-CAM, one colour scale for all). Pick one explanation " +
      "that looks at the right evidence (good) and one that looks at the wrong thing (bad)" +
      (v.of > v.candidates.length ? ` — ${v.candidates.length} of the ${v.of} candidates, drawn at random.` : ".") +
      " Keys: 1–9, 0, -, = pick a card; g marks it good, b bad." }),
    h("div.gallery-grid", {}, ...cards),
    h("div.actions.sticky-actions", {}, submitBtn, message)));

  function pick(which, item) {
    if (which === "good") { good = good === item ? null : item; if (bad === item) bad = null; }
    else { bad = bad === item ? null : item; if (good === item) good = null; }
    refresh();
  }
  function refresh() {
    cards.forEach((c) => c.refresh());
    submitBtn.disabled = good === null || bad === null;
    message.set(good === null && bad === null ? "Pick one good and one bad explanation."
      : good === null ? "Now pick the good one." : bad === null ? "Now pick the bad one." : "");
  }
  refresh();

  async function send() {
    if (good === null || bad === null) return;
    submitBtn.disabled = true;
    await api.submit({ good, bad });
    refresh();
  }

  let focused = null; // the card the keyboard points at
  function point(n) {
    focused = v.candidates[n]?.item ?? focused;
    cards.forEach((c, j) => c.classList.toggle("pointed", v.candidates[j].item === focused));
  }
  return {
    keydown(e) {
      if (e.key === "Enter" && !e.target.closest?.("button") && good !== null && bad !== null) { send(); return true; }
      if (e.ctrlKey || e.metaKey || e.altKey) return false;
      const n = KEYS.indexOf(e.key);
      if (n >= 0 && n < cards.length) { point(n); return true; }
      if ((e.key === "g" || e.key === "b") && focused !== null) { pick(e.key === "g" ? "good" : "bad", focused); return true; }
      return false;
    },
  };
}
