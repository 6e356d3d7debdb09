// The `explain_label` question (XAL): the item's label (chosen here when the question asks it, keys 0–9 / a–z)
// and one free-text explanation per class, the gold label's first.
import { h, notice, modified, typing } from "/static/kit.js";
import { keyOf, predictionsBlock } from "/static/views/label.js";

export function render(root, q, api) {
  const v = q.view;
  const asksLabel = v.label === null || v.label === undefined;
  const max = v.max_chars || 2000;
  const draft = api.draft.get();
  const before = q.answer?.explanations || (Array.isArray(draft) ? draft : draft?.explanations) || [];
  let label = asksLabel ? (q.answer?.label ?? draft?.label ?? null) : v.label;
  const areas = new Map();
  const titles = new Map();
  const fields = new Map();
  const message = notice();
  const switched = notice("hint", "status");

  const saveDraft = () => {
    const explanations = v.classes.map((_, k) => areas.get(k)?.value || "");
    api.draft.set(asksLabel ? { label, explanations } : explanations);
  };
  for (const [c] of v.classes.entries()) {
    const area = h("textarea.explanation", { "data-class": String(c), rows: 2, maxlength: String(max),
      oninput: () => {
        saveDraft();
        area.classList.remove("invalid");
        if (![...areas.values()].some((a) => a.classList.contains("invalid"))) message.set("");
      } });
    area.value = before[c] || "";
    areas.set(c, area);
    titles.set(c, h("span"));
    fields.set(c, h("label.field", {}, titles.get(c), area));
  }
  const list = h("div.fields");
  const buttons = asksLabel ? v.classes.map((name, c) => h("button.class", {
    type: "button", "data-class": String(c), title: keyOf(c) ? `key ${keyOf(c)}` : undefined,
    onclick: () => choose(c, true),
  }, keyOf(c) && h("kbd", { text: keyOf(c) }), h("span.name", { text: name }))) : [];
  const submitBtn = h("button.submit.primary", { type: "button", onclick: send }, "Submit ", h("kbd", { text: "Ctrl+Enter" }));

  const preds = predictionsBlock(v.predictions);

  root.append(h("div.explain-view", {},
    h("div.item.item-text", {}, ...v.text.map((t, n) =>
      h("p", {}, v.text.length > 1 && h("span.part-name", { text: n === 0 ? "text" : "text b" }), t))),
    asksLabel ? h("div.label-choice", {},
      h("h2", { text: "Which class is this?" }),
      preds,
      v.why && h("p.why", {}, h("span.muted", { text: "Why it is asked: " }), v.why),
      h("div.classes", {}, ...buttons))
      : h("p.label-line", {}, "Label: ", h("strong.tag", { text: v.classes[label] })),
    v.model_explanation !== undefined ? h("p.model-explanation.muted", {}, "The model's own explanation now: ",
      v.model_explanation ? h("q", { text: v.model_explanation }) : h("em", { text: "none yet (it writes nothing)" })) : null,
    list, switched, message,
    h("div.actions", {}, submitBtn)));
  choose(label, label !== null, false);

  /** Put the label's field first and word every field for it (no label yet: the fields wait for one). Each
   * explanation stays with its class (it says why the text would be that class): a changed class says so. */
  function choose(c, focus, scroll = true) {
    if (asksLabel && c !== null && (c < 0 || c >= v.classes.length)) return;
    if (label !== null && c !== label && [...areas.values()].some((a) => a.value.trim())) {
      switched.set(`Changed to ${v.classes[c]}: each explanation stays with its class, so "Why is it ${v.classes[c]}?" ` +
        `now holds what you wrote for ${v.classes[c]}. Check both before you submit.`);
    }
    label = c;
    buttons.forEach((b, k) => b.classList.toggle("chosen", k === c));
    const order = c === null ? [] : [c, ...v.classes.map((_, k) => k).filter((k) => k !== c)];
    for (const [k, title] of titles) {
      title.replaceChildren(...(k === c ? ["Why is it ", h("strong", { text: v.classes[k] }), "?"]
        : ["Why might someone (wrongly) say ", h("strong", { text: v.classes[k] }), "?"]));
      fields.get(k).classList.toggle("gold", k === c);
      areas.get(k).rows = k === c ? 3 : 2;
      areas.get(k).placeholder = k === c ? "what in the text shows it" : "what could mislead someone into this class";
    }
    list.replaceChildren(...order.map((k) => fields.get(k)));
    if (c === null) list.append(h("p.hint.muted", { text: "Choose the class first (its key or a click); then explain every class." }));
    if (asksLabel) saveDraft();
    if (c !== null && (focus || !asksLabel)) areas.get(c).focus({ preventScroll: !scroll });
    if (c !== null) message.set("");
  }

  async function send() {
    if (label === null) {
      message.set("Choose the class of this text first.");
      return;
    }
    const order = [label, ...v.classes.map((_, c) => c).filter((c) => c !== label)];
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
      if (!asksLabel || modified(e) || typing(e)) return false;
      const k = e.key.toLowerCase();
      const c = v.classes.findIndex((_, i) => keyOf(i) === k);
      if (k.length === 1 && c >= 0) { choose(c, true); e.preventDefault(); return true; }
      return false;
    },
  };
}
