// The `explain_label` question (XAL): one free-text explanation per class, the gold label's first.
import { h, notice } from "/static/kit.js";

export function render(root, q, api) {
  const v = q.view;
  const label = v.label;
  const max = v.max_chars || 2000;
  const before = q.answer?.explanations || api.draft.get() || [];
  const order = [label, ...v.classes.map((_, c) => c).filter((c) => c !== label)];
  const areas = new Map();
  const message = notice();

  const fields = order.map((c, n) => {
    const area = h("textarea.explanation", { "data-class": String(c), rows: n === 0 ? 3 : 2, maxlength: String(max),
      placeholder: n === 0 ? "what in the text shows it" : "what could mislead someone into this class",
      oninput: () => {
        api.draft.set(v.classes.map((_, k) => areas.get(k)?.value || ""));
        area.classList.remove("invalid");
        if (![...areas.values()].some((a) => a.classList.contains("invalid"))) message.set("");
      } });
    area.value = before[c] || "";
    areas.set(c, area);
    const title = n === 0 ? h("span", {}, "Why is it ", h("strong", { text: v.classes[c] }), "?")
      : h("span", {}, "Why might someone (wrongly) say ", h("strong", { text: v.classes[c] }), "?");
    return h("label.field" + (n === 0 ? ".gold" : ""), {}, title, area);
  });
  const submitBtn = h("button.submit.primary", { type: "button", onclick: send }, "Submit ", h("kbd", { text: "Ctrl+Enter" }));

  root.append(h("div.explain-view", {},
    h("div.item.item-text", {}, ...v.text.map((t, n) =>
      h("p", {}, v.text.length > 1 && h("span.part-name", { text: n === 0 ? "text" : "text b" }), t))),
    h("p.label-line", {}, "Label: ", h("strong.tag", { text: v.classes[label] })),
    v.model_explanation ? h("p.model-explanation.muted", {}, "The model's own explanation now: ",
      h("q", { text: v.model_explanation })) : null,
    ...fields, message,
    h("div.actions", {}, submitBtn)));
  areas.get(label).focus({ preventScroll: true });

  async function send() {
    const empty = order.filter((c) => !areas.get(c).value.trim());
    for (const [c, a] of areas) a.classList.toggle("invalid", empty.includes(c));
    if (empty.length) {
      message.set(`Every class needs an explanation: ${empty.map((c) => v.classes[c]).join(", ")} ${empty.length > 1 ? "are" : "is"} empty.`);
      areas.get(empty[0]).focus();
      return;
    }
    message.set("");
    submitBtn.disabled = true;
    await api.submit({ label, explanations: v.classes.map((_, c) => areas.get(c).value.trim()) });
    submitBtn.disabled = false;
  }

  return {
    keydown(e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { send(); return true; }
      return false;
    },
  };
}
