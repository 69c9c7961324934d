// Tiny DOM helpers: build elements without innerHTML, so nothing from the API is ever parsed
// as markup (container names, filters and tcpdump messages are always plain text).

/**
 * h("button", {class: "primary", onclick: fn, dataset: {id: "x"}}, "Stop")
 * Props starting with "on" become listeners; `dataset` fills data-*; false/null props are left out.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace all children of `el`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Run `render()` without losing keyboard focus: an element carrying data-focus-key keeps focus
 * when the render replaces it with a new element carrying the same key.
 */
export function keepingFocus(render) {
  const key = document.activeElement?.dataset?.focusKey;
  render();
  if (!key) return;
  const again = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
  if (again && again !== document.activeElement && !again.disabled) again.focus();
}

/** Show a message in a status element (empty text hides it). */
export function say(el, text, kind = "") {
  el.textContent = text || "";
  el.hidden = !text;
  el.dataset.kind = kind;
}

/** Copy a read-only field: the Clipboard API where allowed (https, localhost), else select. */
export async function copyField(field, status) {
  field.focus();
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    status.textContent = "Copied.";
  } catch {
    const copied = document.execCommand?.("copy");
    status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  }
}

/** Run `fn` now, then again `ms` after each run has ended (never two at once), until the
 * returned function is called. */
export function repeat(ms, fn) {
  let on = true;
  let timer = null;
  const tick = async () => {
    await fn();
    if (on) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    on = false;
    clearTimeout(timer);
  };
}
