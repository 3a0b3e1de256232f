// Small DOM helpers.  Text always goes in as text nodes, never as HTML: message bodies come from strangers.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const yearFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// "14:05" today, "12 Nov" this year, "12 Nov 2025" before.
export function shortTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const now = new Date();
  if (sameDay(date, now)) return timeFormat.format(date);
  if (date.getFullYear() === now.getFullYear()) return dayFormat.format(date);
  return yearFormat.format(date);
}

export function messageTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return sameDay(date, new Date()) ? timeFormat.format(date) : fullFormat.format(date);
}

export function fullTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : fullFormat.format(date);
}

export function contactName(contact) {
  if (!contact) return 'Unknown contact';
  return contact.profile_name || (contact.wa_id ? `+${contact.wa_id}` : '') || contact.user_id || 'Unknown contact';
}

export function contactNumber(contact) {
  return contact && contact.wa_id ? `+${contact.wa_id}` : (contact && contact.user_id) || '';
}

// What a message shows as text: its body, or its type for media and unknown types.
export function messagePreview(message) {
  if (!message) return 'No messages yet';
  if (message.text) return message.text;
  return `[${message.type || 'message'}]`;
}

// Bring `container`'s children in line with `items` without rebuilding what did not change, so polling
// neither steals keyboard focus nor makes a screen reader announce old messages again.
// render(item) builds a node; signature(item) changes whenever the node must be rebuilt.
export function reconcile(container, items, { key, signature, render, focusSelector }) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  const focusedKey = container.contains(document.activeElement)
    ? document.activeElement.closest('[data-key]')?.dataset.key
    : undefined;
  const seen = new Set();
  const unique = items.filter((item) => {
    const k = String(key(item));
    if (seen.has(k)) return false; // pages fetched one after another can overlap while data changes
    seen.add(k);
    return true;
  });
  const wanted = unique.map((item) => {
    const k = String(key(item));
    const sig = signature(item);
    let node = existing.get(k);
    if (!node || node.dataset.signature !== sig) {
      node = render(item);
      node.dataset.key = k;
      node.dataset.signature = sig;
    }
    return node;
  });
  const keep = new Set(wanted);
  for (const child of [...container.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((node, index) => {
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
  });
  if (focusedKey !== undefined && !container.contains(document.activeElement)) {
    const node = wanted.find((n) => n.dataset.key === focusedKey);
    const target = node && (focusSelector ? node.querySelector(focusSelector) : node);
    if (target) target.focus();
  }
}
